/**
 * The authorization server's consent page: server-rendered, no script, every dynamic
 * value escaped. Its words follow the connect flow's consent page
 * (services/gateway/src/connect/connect-pages.ts) so a person sees one vocabulary.
 */
const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

function esc(value: string): string {
  return value.replace(/[&<>"'`]/g, (c) => ESCAPES[c] ?? '');
}

/**
 * `same-origin` referrer policy, not `no-referrer`: with no-referrer a browser sends
 * `Origin: null` on the consent form's POST, and the origin check (oauth-interactions.ts)
 * could not tell our own form from a forged one. Other sites still get no referrer.
 */
function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${esc(title)}</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.4rem}ul{padding-left:1.2rem}li{margin:.4rem 0}
.actions{display:flex;gap:.75rem;margin-top:1.5rem}
button{font:inherit;padding:.55rem 1.2rem;border-radius:.4rem;border:1px solid #444;background:#fff;color:#1b1b1b;cursor:pointer}
.primary{background:#1b4fd8;border-color:#1b4fd8;color:#fff}
.note{color:#555;font-size:.9rem}
</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>`;
}

/** What one requested scope lets the application do, in words. */
export function describeScope(scope: string): string {
  switch (scope) {
    case 'openid':
      return 'Know who you are on Context Gateway';
    case 'profile':
      return 'See your display name';
    case 'offline_access':
      return 'Keep this access when you are not using it, until you revoke it';
    default: {
      // Capabilities are `<integration>:<action>[:<resource>]` (application-rules.ts).
      const [integration = scope, action = '', ...resource] = scope.split(':');
      const what = resource.length > 0 ? resource.join(' ') : 'data';
      return action === 'read'
        ? `Read your ${integration} ${what}`
        : `Use ${integration}: ${[action, ...resource].join(' ')}`;
    }
  }
}

export interface OAuthConsentView {
  applicationName: string;
  /** The host the browser returns to with the code: what the person is really trusting. */
  redirectHost: string;
  /** A metadata-URL client: the host of its document, which is what vouches for its name. */
  metadataHost?: string;
  scopes: string[];
  action: string;
  displayName: string;
}

export function oauthConsentPage(v: OAuthConsentView): string {
  const items = v.scopes
    .map((s) => `<li><strong>${esc(describeScope(s))}</strong> <span class="note">(${esc(s)})</span></li>`)
    .join('');
  return layout(
    `Allow ${v.applicationName}`,
    `<h1>${esc(v.applicationName)} wants to access your Context Gateway data</h1>
${v.metadataHost ? `<p class="note">This client describes itself in a document published at <strong>${esc(v.metadataHost)}</strong>; your organization allowed it.</p>\n` : ''}<p>If you allow it, ${esc(v.applicationName)} will be able to:</p>
<ul>${items}</ul>
<p class="note">You are signed in as ${esc(v.displayName)}. After you decide, you are sent back to <strong>${esc(v.redirectHost)}</strong>. ${esc(v.applicationName)} never sees your passkey; you can revoke this access at any time.</p>
<form method="post" action="${esc(v.action)}">
<div class="actions"><button class="primary" type="submit" name="decision" value="allow">Allow</button><button type="submit" name="decision" value="deny">Deny</button></div>
</form>`,
  );
}

/** An error page; `code` is the stable error code, shown so a person can quote it to support. */
export function oauthErrorPage(title: string, message: string, code: string): string {
  return layout(
    title,
    `<h1>${esc(title)}</h1><p role="alert">${esc(message)}</p><p class="note">You can close this window and start again from the app.</p><p class="note">Error code: <code>${esc(code)}</code></p>`,
  );
}
