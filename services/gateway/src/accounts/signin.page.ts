const escapeHtml = (value: string) => value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** No inline script, nothing from elsewhere, no framing: the page that creates sessions gets the strictest policy. */
export const SIGNIN_CSP =
  "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * The sign-in page: sign in with a passkey, or create an account with a new one, then go
 * to `returnTo` (already checked to be a same-origin path). Server-rendered, tiny, and
 * driven by /v1/auth/assets/signin.js.
 */
export function renderSigninPage(returnTo: string, options: { forceLogin?: boolean } = {}): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · Context Gateway</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 28rem; margin: 4rem auto; padding: 0 1rem; color: #1d1d1f; }
  h1 { font-size: 1.5rem; }
  section { border: 1px solid #ddd; border-radius: .75rem; padding: 1rem 1.25rem; margin: 1rem 0; }
  button { font: inherit; padding: .5rem 1rem; border-radius: .5rem; border: 1px solid #0a58ca; background: #0d6efd; color: white; cursor: pointer; }
  button.secondary { background: white; color: #0a58ca; }
  input { font: inherit; padding: .4rem .6rem; width: 100%; box-sizing: border-box; margin: .25rem 0 .75rem; }
  #status { min-height: 1.5rem; }
  #status.error { color: #b00020; }
  [hidden] { display: none; }
  .autofill-field { display: none; }
  body[data-autofill="waiting"] .autofill-field { display: block; }
</style>
</head>
<body data-return-to="${escapeHtml(returnTo)}" data-prompt="${options.forceLogin ? 'login' : ''}">
<h1>Context Gateway</h1>
<p>Your gateway account is protected by a passkey: no password, nothing to phish.</p>
<section id="signed-in" hidden>
  <p>Signed in as <strong id="user-name"></strong>.</p>
  <button id="continue" type="button">Continue</button>
  <button id="sign-out" type="button" class="secondary">Sign out</button>
</section>
<section id="signed-out">
  <h2>I have an account</h2>
  <div class="autofill-field">
  <label for="username">Your account (your browser offers your passkeys here)</label>
  <input id="username" name="username" autocomplete="username webauthn" maxlength="100">
  </div>
  <button id="sign-in" type="button">Sign in with a passkey</button>
</section>
<section id="organization">
  <h2>Sign in with your organization</h2>
  <label for="organization-name">Your work email, or your organization's name on Context Gateway</label>
  <input id="organization-name" name="organization" autocomplete="email" maxlength="320">
  <button id="sign-in-sso" type="button" class="secondary">Continue with single sign-on</button>
</section>
<section id="create">
  <h2>New here?</h2>
  <label for="display-name">Your name (shown only to you)</label>
  <input id="display-name" name="displayName" autocomplete="name" maxlength="100">
  <button id="create-account" type="button" class="secondary">Create an account with a passkey</button>
</section>
<p id="status" role="status" aria-live="polite"></p>
<script src="/v1/auth/assets/webauthn.js"></script>
<script src="/v1/auth/assets/signin.js"></script>
</body>
</html>
`;
}

/** The page's behaviour; the WebAuthn calls go through @simplewebauthn/browser (served beside it). */
export const SIGNIN_SCRIPT = `'use strict';
(function () {
  var lib = window.SimpleWebAuthnBrowser;
  var returnTo = document.body.dataset.returnTo || '/v1/auth/signin';
  var status = document.getElementById('status');
  function show(message, isError) { status.textContent = message; status.className = isError ? 'error' : ''; }
  function call(method, path, body) {
    return fetch(path, {
      method: method,
      credentials: 'same-origin',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (res) {
      return res.text().then(function (text) {
        var json = text ? JSON.parse(text) : {};
        if (!res.ok) { var e = new Error(json.detail || res.statusText); e.code = json.code; throw e; }
        return json;
      });
    });
  }
  function busy(on) { document.querySelectorAll('button').forEach(function (b) { b.disabled = on; }); }
  function fail(error) {
    busy(false);
    var cancelled = error && (error.name === 'NotAllowedError' || error.name === 'AbortError');
    show(cancelled ? 'The passkey prompt was cancelled. Try again.' : 'That did not work: ' + (error && error.message ? error.message : error), true);
  }
  function done() { show('Signed in. Redirecting…', false); window.location.assign(returnTo); }

  // Conditional mediation: for a signed-out person, the browser offers their passkeys in the
  // account field's autofill, with no button pressed. body[data-autofill] says what the page
  // did: waiting (an autofill request is open; the field is shown) or off. One ceremony at a
  // time holds the ceremony cookie: "Sign in" answers the open autofill ceremony's own
  // challenge with the browser's prompt instead of starting another, and the autofill
  // ceremony is renewed before its challenge expires.
  var buttonPressed = false;
  var autofillReady = Promise.resolve();
  var autofillOptions;
  var autofillTimer;
  function supportsAutofill() {
    return lib.browserSupportsWebAuthnAutofill ? lib.browserSupportsWebAuthnAutofill() : Promise.resolve(false);
  }
  function startAutofill() {
    return supportsAutofill().then(function (yes) {
      if (!yes || buttonPressed) return;
      return call('POST', '/v1/auth/passkeys/authentication/options', {}).then(function (options) {
        if (buttonPressed) return;
        autofillOptions = { options: options, until: Date.now() + (options.timeout || 300000) - 60000 };
        document.body.dataset.autofill = 'waiting';
        clearTimeout(autofillTimer);
        autofillTimer = setTimeout(function () {
          if (buttonPressed) return;
          autofillOptions = undefined;
          autofillReady = startAutofill();
        }, Math.max(30000, (options.timeout || 300000) - 30000));
        lib.startAuthentication({ optionsJSON: options, useBrowserAutofill: true })
          .then(function (response) {
            busy(true); show('Signing you in…', false);
            return call('POST', '/v1/auth/passkeys/authentication/verify', { response: response });
          })
          .then(done, function (error) {
            // A button's ceremony, or the renewal, cancels this one: nothing to say.
            if (error && (error.name === 'AbortError' || error.code === 'ERROR_CEREMONY_ABORTED')) return;
            fail(error);
          });
      });
    }).catch(function () { /* no autofill: the buttons still work */ }).then(function () {
      if (!document.body.dataset.autofill) document.body.dataset.autofill = 'off';
    });
  }
  function afterAutofill(start) {
    return function () {
      buttonPressed = true;
      clearTimeout(autofillTimer);
      busy(true); show('One moment…', false);
      // Asked after the autofill request's own question of the browser, and answered in that
      // order: the button's ceremony starts after the autofill one, and is the one that cancels.
      autofillReady.then(supportsAutofill).then(function () {
        // The open ceremony's challenge, unless it has too little time left to be answered.
        var open = autofillOptions && Date.now() < autofillOptions.until ? autofillOptions.options : undefined;
        autofillOptions = undefined;
        start(open);
      });
    };
  }

  document.getElementById('sign-in').addEventListener('click', afterAutofill(function (open) {
    show('Waiting for your passkey…', false);
    (open ? Promise.resolve(open) : call('POST', '/v1/auth/passkeys/authentication/options', {}))
      .then(function (options) { return lib.startAuthentication({ optionsJSON: options }); })
      .then(function (response) { return call('POST', '/v1/auth/passkeys/authentication/verify', { response: response }); })
      .then(done, fail);
  }));
  document.getElementById('create-account').addEventListener('click', afterAutofill(function () {
    show('Creating your passkey…', false);
    var name = document.getElementById('display-name').value.trim();
    call('POST', '/v1/auth/passkeys/registration/options', name ? { displayName: name } : {})
      .then(function (options) { return lib.startRegistration({ optionsJSON: options }); })
      .then(function (response) { return call('POST', '/v1/auth/passkeys/registration/verify', { response: response }); })
      .then(done, fail);
  }));
  // Organization SSO: the gateway answers with the IdP's authorization URL (and a cookie binding
  // the sign-in to this browser); the IdP sends the browser back to /v1/auth/sso/callback.
  document.getElementById('sign-in-sso').addEventListener('click', function () {
    var organization = document.getElementById('organization-name').value.trim();
    if (!organization) { show('Enter your work email or your organization.', true); return; }
    busy(true); show('Taking you to your organization…', false);
    call('POST', '/v1/auth/sso/start', { organization: organization, returnTo: returnTo })
      .then(function (started) { window.location.assign(started.authorizationUrl); }, fail);
  });
  document.getElementById('continue').addEventListener('click', function () { window.location.assign(returnTo); });
  document.getElementById('sign-out').addEventListener('click', function () {
    call('DELETE', '/v1/auth/session').then(function () { window.location.reload(); }, fail);
  });
  // prompt=login: a fresh passkey confirmation is wanted, so neither an existing session nor
  // the autofill is offered: the person presses the button.
  if (document.body.dataset.prompt === 'login') { document.body.dataset.autofill = 'off'; return; }
  autofillReady = call('GET', '/v1/auth/session').then(function (session) {
    document.body.dataset.autofill = 'off';
    document.getElementById('user-name').textContent = session.displayName;
    document.getElementById('signed-in').hidden = false;
    document.getElementById('signed-out').hidden = true;
    document.getElementById('create').hidden = true;
    document.getElementById('organization').hidden = true;
  }, function () { return startAutofill(); /* not signed in: the page as rendered, with autofill */ });
})();
`;
