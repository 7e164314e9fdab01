import { html, type SafeHtml } from '../http/html.js';

/**
 * The consent flow's pages: small, server-rendered, no script, every dynamic value escaped
 * through `html` (http/html.ts), so nothing an app or a source sends can become markup.
 */
export function layout(title: string, body: SafeHtml): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title}</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.4rem}ul{padding-left:1.2rem}li{margin:.4rem 0}
.actions{display:flex;gap:.75rem;margin-top:1.5rem}
button,.button{font:inherit;padding:.55rem 1.2rem;border-radius:.4rem;border:1px solid #444;background:#fff;color:#1b1b1b;text-decoration:none;cursor:pointer}
.primary{background:#1b4fd8;border-color:#1b4fd8;color:#fff}
label{display:block;margin-top:1rem}input[type=password]{width:100%;font:inherit;padding:.4rem}
.note{color:#555;font-size:.9rem}pre{white-space:pre-wrap;word-break:break-all;background:#f4f4f4;padding:.6rem;border-radius:.3rem}
</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>`.value;
}

export interface ConsentView {
  applicationName: string;
  integrationName: string;
  scopes: { scope: string; description: string }[];
  /** The form's action: this page's own path. */
  action: string;
  csrf: string;
  /** Signed in: Allow posts the form. Not signed in: Allow leads to the passkey page first. */
  signedIn: boolean;
  signInUrl: string;
  /** The user already has a connection covering these scopes: no second source login. */
  reusesConnection: boolean;
  /** An API-key integration: the person pastes their key. */
  apiKeyLabel?: string;
  /** A file-export integration (no API): nothing to type or sign in to; the app asks for the export file later. */
  fileExport?: boolean;
  /**
   * Signed in: the WebAuthn challenge Allow signs with the person's passkey (the hash of the
   * grant's terms); the page's script asks the passkey and posts the assertion with the form.
   */
  consentChallenge?: string;
  /** The credential ids the person's Personal Server trusts (base64url); empty: any passkey of theirs. */
  trustedPasskeys?: string[];
  error?: string;
}

export function consentPage(v: ConsentView): string {
  const scopes = v.scopes.map(
    (s) => html`<li><strong>${s.description}</strong> <span class="note">(${s.scope})</span></li>`,
  );
  const next = v.reusesConnection
    ? html`<p class="note">You already connected ${v.integrationName}. Allowing shares that connection with ${v.applicationName}; you will not be asked to sign in to ${v.integrationName} again.</p>`
    : v.fileExport
      ? html`<p class="note">${v.integrationName} has no way to share data directly. After you allow, ${v.applicationName} will ask you for the data export you download from ${v.integrationName}; only what you upload is shared.</p>`
      : v.apiKeyLabel
        ? html`<p class="note">${v.integrationName} uses an API key. It is stored encrypted and never shown to ${v.applicationName}.</p>`
        : html`<p class="note">Next, ${v.integrationName} will ask you to sign in and confirm. ${v.applicationName} never sees your ${v.integrationName} password or tokens.</p>`;
  const allow = v.signedIn
    ? html`${v.apiKeyLabel && !v.reusesConnection ? html`<label for="apiKey">${v.apiKeyLabel}</label><input id="apiKey" name="apiKey" type="password" autocomplete="off" required>` : ''}
<input type="hidden" id="assertion" name="assertion" value="">
<div class="actions"><button class="primary" id="allow" type="submit" name="decision" value="allow">Allow</button><button type="submit" name="decision" value="deny" formnovalidate>Deny</button></div>
<p class="note" id="consent-status" role="status" aria-live="polite">Allow asks your passkey to sign what you allow: only a grant you signed is honoured.</p>
<noscript><p class="note"><strong>Allowing needs JavaScript: your passkey signs your consent in this page.</strong></p></noscript>`
    : html`<div class="actions"><a class="button primary" href="${v.signInUrl}">Continue with a passkey</a><button type="submit" name="decision" value="deny">Deny</button></div>
<p class="note">To allow, sign in to Context Gateway with your passkey (or create one); you come back here afterwards.</p>`;
  return layout(
    `Connect ${v.integrationName} to ${v.applicationName}`,
    html`<h1>${v.applicationName} wants to access your ${v.integrationName} data</h1>
${v.error ? html`<p role="alert"><strong>${v.error}</strong></p>` : ''}
<p>If you allow it, ${v.applicationName} will be able to:</p>
<ul>${scopes}</ul>
${next}
<form method="post" action="${v.action}" id="consent"${v.consentChallenge ? html` data-challenge="${v.consentChallenge}" data-credentials="${(v.trustedPasskeys ?? []).join(' ')}"` : ''}>
<input type="hidden" name="csrf" value="${v.csrf}">
${allow}
</form>
${v.consentChallenge ? html`<script src="/v1/auth/assets/webauthn.js"></script><script src="/v1/connect/assets/consent.js"></script>` : ''}`,
  );
}

/**
 * The consent page's script: Allow first asks the person's passkey to sign the grant's
 * challenge (user verification required), then posts the form with the assertion. Deny
 * posts at once. WebAuthn through @simplewebauthn/browser, served from our own origin.
 */
export const CONSENT_SCRIPT = `'use strict';
(function () {
  var lib = window.SimpleWebAuthnBrowser;
  var form = document.getElementById('consent');
  var field = document.getElementById('assertion');
  var allow = document.getElementById('allow');
  var status = document.getElementById('consent-status');
  if (!lib || !form || !field || !allow || !form.dataset.challenge) return;
  var submitted = false;
  allow.addEventListener('click', function (event) {
    event.preventDefault();
    if (submitted || allow.disabled || !form.reportValidity()) return;
    allow.disabled = true;
    status.textContent = 'Confirm with your passkey to sign your consent…';
    lib.startAuthentication({
      optionsJSON: {
        challenge: form.dataset.challenge,
        allowCredentials: (form.dataset.credentials || '').split(' ').filter(Boolean).map(function (id) {
          return { id: id, type: 'public-key' };
        }),
        rpId: window.location.hostname,
        userVerification: 'required',
        timeout: 120000,
      },
    })
      .then(function (response) {
        // Posted once: Allow stays disabled, and the decision goes in a field of its own (a
        // disabled button's value is not sent).
        submitted = true;
        field.value = JSON.stringify(response);
        var decision = document.createElement('input');
        decision.type = 'hidden';
        decision.name = 'decision';
        decision.value = 'allow';
        form.appendChild(decision);
        status.textContent = 'Signed. Continuing…';
        form.submit();
      })
      .catch(function (error) {
        allow.disabled = false;
        var cancelled = error && (error.name === 'NotAllowedError' || error.name === 'AbortError');
        status.textContent = cancelled
          ? 'The passkey prompt was cancelled: nothing was allowed. Choose Allow again when you are ready.'
          : 'Your passkey could not sign: ' + (error && error.message ? error.message : error);
      });
  });
})();
`;

/**
 * The flow ended without a connection for a reason the person reads first; the link goes back
 * to the app's registered callback (which carries the error for the app).
 */
export function refusedPage(title: string, message: string, back: string, backUrl: string, code: string): string {
  return layout(
    title,
    html`<h1>${title}</h1><p role="alert">${message}</p><div class="actions"><a class="button primary" href="${backUrl}">${back}</a></div><p class="note">Error code: <code>${code}</code></p>`,
  );
}

/** A dead end the person can understand; no app redirect (there is no trusted place to send them). */
/** An error page; `code` is the stable error code, shown so a person can quote it to support. */
export function errorPage(title: string, message: string, code?: string): string {
  return layout(
    title,
    html`<h1>${title}</h1><p role="alert">${message}</p><p class="note">You can close this window and start again from the app.</p>${code ? html`<p class="note">Error code: <code>${code}</code></p>` : undefined}`,
  );
}
