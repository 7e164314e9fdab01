/** The HTML a person sees at the simulated source: login form, consent page, errors. */

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#1f2328}
h1{font-size:1.3rem}label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.4rem;box-sizing:border-box}
button{margin:1rem .5rem 0 0;padding:.5rem 1.2rem}.error{color:#b00020}.note{color:#666;font-size:.85rem}
li{margin:.3rem 0}</style></head>
<body>${body}</body></html>`;
}

export function loginPage(p: {
  title: string;
  requestId: string;
  clientName: string;
  error?: string;
  hint: string;
}): string {
  return layout(
    `Sign in to ${p.title}`,
    `<h1>Sign in to ${escapeHtml(p.title)}</h1>
<p>to continue to <strong>${escapeHtml(p.clientName)}</strong></p>
${p.error ? `<p class="error" role="alert">${escapeHtml(p.error)}</p>` : ''}
<form method="post" action="/oauth-ui/login">
<input type="hidden" name="request_id" value="${escapeHtml(p.requestId)}">
<label for="login">Username</label><input id="login" name="login" autocomplete="username" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" id="sign-in">Sign in</button>
</form>
<p class="note">Simulated source. ${escapeHtml(p.hint)}</p>`,
  );
}

export function consentPage(p: {
  title: string;
  requestId: string;
  clientName: string;
  login: string;
  scopes: Array<{ scope: string; description: string }>;
}): string {
  const items = p.scopes.length
    ? p.scopes.map((s) => `<li><code>${escapeHtml(s.scope)}</code> — ${escapeHtml(s.description)}</li>`).join('\n')
    : '<li>Read your public profile</li>';
  return layout(
    `Authorize ${p.clientName}`,
    `<h1>Authorize ${escapeHtml(p.clientName)}</h1>
<p>Signed in to ${escapeHtml(p.title)} as <strong id="account">${escapeHtml(p.login)}</strong>.</p>
<p><strong>${escapeHtml(p.clientName)}</strong> is asking to:</p>
<ul id="scopes">${items}</ul>
<form method="post" action="/oauth-ui/consent">
<input type="hidden" name="request_id" value="${escapeHtml(p.requestId)}">
<button type="submit" name="decision" value="allow" id="allow">Allow</button>
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
</form>`,
  );
}

export function errorPage(title: string, message: string): string {
  return layout(title, `<h1>${escapeHtml(title)}</h1><p class="error" role="alert">${escapeHtml(message)}</p>`);
}
