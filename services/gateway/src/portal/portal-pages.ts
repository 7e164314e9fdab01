import { html, type SafeHtml } from '../http/html.js';
import type { AccessView, ConnectionView } from './portal.service.js';

/**
 * The person's portal, server-rendered: no script, one stylesheet from this origin, forms
 * for every action (so it works with a keyboard, a screen reader and without JavaScript),
 * every dynamic value escaped by `html`.
 */
export const PORTAL_CSP =
  "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

export const PORTAL_STYLESHEET = `
:root{--ink:#1b1b1b;--muted:#555;--line:#d0d0d0;--accent:#1b4fd8;--danger:#a4161a;--ok:#1e6b33;--bg:#fff}
*{box-sizing:border-box}
body{font:16px/1.5 system-ui,sans-serif;margin:0;color:var(--ink);background:var(--bg)}
.skip{position:absolute;left:-999px;top:0;background:#fff;padding:.5rem 1rem}
.skip:focus{left:0}
header{border-bottom:1px solid var(--line);padding:.75rem 1rem;display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:center}
header .brand{font-weight:700;margin-right:auto}
nav ul{list-style:none;display:flex;flex-wrap:wrap;gap:1rem;margin:0;padding:0}
nav a[aria-current=page]{font-weight:700}
main{max-width:52rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin:0 0 .25rem}h3{font-size:1rem;margin:1rem 0 .25rem}
a{color:var(--accent)}
a:focus-visible,button:focus-visible,summary:focus-visible{outline:3px solid #f4b400;outline-offset:2px}
.card{border:1px solid var(--line);border-radius:.6rem;padding:1rem;margin:1rem 0}
.meta{color:var(--muted);font-size:.9rem;margin:.25rem 0}
.status{display:inline-block;border-radius:1rem;padding:0 .6rem;font-size:.85rem;border:1px solid currentColor}
.status-active{color:var(--ok)}.status-needs_reauth,.status-failed{color:var(--danger)}.status-deleting{color:var(--muted)}
ul.grants{list-style:none;padding:0;margin:0}
ul.grants>li{border-top:1px solid var(--line);padding:.6rem 0}
ul.scopes{margin:.25rem 0 .5rem 1.2rem;padding:0}
form.inline{display:inline}
button,.button{font:inherit;padding:.45rem 1rem;border-radius:.4rem;border:1px solid #444;background:#fff;color:var(--ink);text-decoration:none;cursor:pointer;display:inline-block}
.danger{background:var(--danger);border-color:var(--danger);color:#fff}
.primary{background:var(--accent);border-color:var(--accent);color:#fff}
.notice{border-left:4px solid var(--accent);padding:.5rem 1rem;background:#f1f4fd}
.warning{border-left:4px solid var(--danger);padding:.5rem 1rem;background:#fdf1f1}
table{border-collapse:collapse;width:100%;font-size:.95rem}
th,td{text-align:left;padding:.4rem;border-bottom:1px solid var(--line);vertical-align:top}
.table-wrap{overflow-x:auto}
svg text{font:13px system-ui,sans-serif;fill:var(--ink)}
svg .bar{fill:var(--accent)}
.meta dl,dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem}dl.meta dd{margin:0}
.actions{display:flex;flex-wrap:wrap;gap:.75rem;margin-top:1rem}
@media (max-width:30rem){main{padding:.75rem}.card{padding:.75rem}}
`;

export type Notice = 'revoked' | 'deleted' | 'deleting' | 'confirmed';

const NOTICES: Record<Notice, string> = {
  revoked: 'Access revoked. That application’s next request for this data fails.',
  deleted: 'The connection is deleted: its records and their key are destroyed.',
  deleting:
    'Every application lost access. Your Personal Server has not confirmed destroying the records yet; it is asked again until it does.',
  confirmed: 'You confirmed with your passkey. You can now do what you started again.',
};

const when = (d: Date | undefined) =>
  d ? html`<time datetime="${d.toISOString()}">${d.toISOString().slice(0, 16).replace('T', ' ')} UTC</time>` : 'never';

const STATUS_WORDS: Record<ConnectionView['status'], string> = {
  active: 'Connected',
  needs_reauth: 'Needs you to sign in again',
  revoked: 'Revoked',
  deleting: 'Being deleted',
  deleted: 'Deleted',
};

const SYNC_WORDS: Record<ConnectionView['sync']['state'], string> = {
  idle: 'Up to date',
  queued: 'Waiting to sync',
  running: 'Syncing now',
  failed: 'The last sync failed',
  needs_reauth: 'Paused until you sign in to the source again',
  unknown: 'Sync state unavailable right now',
};

function layout(title: string, current: 'connections' | 'activity' | undefined, body: SafeHtml, csrf?: string): string {
  const link = (href: string, label: string, key: typeof current) =>
    html`<li><a href="${href}"${key === current ? html` aria-current="page"` : ''}>${label}</a></li>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title} · Context Gateway</title>
<link rel="stylesheet" href="/account/assets/portal.css">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header>
<span class="brand">Context Gateway</span>
<nav aria-label="Your account"><ul>${[link('/account', 'Connections', 'connections'), link('/account/activity', 'Access log', 'activity')]}</ul></nav>
${csrf ? html`<form class="inline" method="post" action="/account/sign-out"><input type="hidden" name="csrf" value="${csrf}"><button type="submit">Sign out</button></form>` : ''}
</header>
<main id="main">
${body}
</main>
</body>
</html>`.value;
}

/** Records per source, as bars: people would rather look than read. */
function recordsChart(connections: ConnectionView[]): SafeHtml {
  const rows = connections.filter((c) => c.status === 'active' || c.status === 'needs_reauth');
  if (rows.length === 0) return html``;
  const max = Math.max(1, ...rows.map((c) => c.sync.recordsSynced));
  const rowHeight = 28;
  const height = rows.length * rowHeight + 8;
  const bars = rows.map((c, i) => {
    const width = Math.round((c.sync.recordsSynced / max) * 300);
    const y = i * rowHeight + 4;
    return html`<text x="0" y="${y + 17}">${c.integrationName}</text><rect class="bar" x="140" y="${y + 4}" width="${Math.max(width, 1)}" height="18" rx="3"></rect><text x="${148 + width}" y="${y + 17}">${c.sync.recordsSynced}</text>`;
  });
  return html`<figure>
<svg role="img" aria-labelledby="records-chart-title" viewBox="0 0 560 ${height}" width="100%" preserveAspectRatio="xMinYMin meet"><title id="records-chart-title">Records stored per source: ${rows.map((c) => `${c.integrationName} ${c.sync.recordsSynced}`).join(', ')}</title>${bars}</svg>
<figcaption class="meta">Records stored in your Personal Server, per source.</figcaption>
</figure>`;
}

function connectionCard(c: ConnectionView, csrf: string): SafeHtml {
  const grants = c.grants.map(
    (g) => html`<li>
<h4>${g.applicationName}</h4>
<p class="meta">Allowed ${when(g.grantedAt)}. It can:</p>
<ul class="scopes">${g.scopes.map((s) => html`<li>${s.description} <span class="meta">(${s.scope})</span></li>`)}</ul>
<form class="inline" method="post" action="/account/connections/${c.id}/grants/${g.applicationId}/revoke">
<input type="hidden" name="csrf" value="${csrf}">
<button type="submit" aria-label="Revoke access for ${g.applicationName} to ${c.integrationName}">Revoke access</button>
</form>
</li>`,
  );
  const sync = c.sync;
  return html`<section class="card" aria-labelledby="c-${c.id}">
<h2 id="c-${c.id}">${c.integrationName}</h2>
<p><span class="status status-${c.status}">${STATUS_WORDS[c.status]}</span> <span class="meta">since ${when(c.createdAt)}</span></p>
${c.status === 'needs_reauth' ? html`<p class="warning">${c.integrationName} no longer accepts our access. Nothing syncs until you connect it again from one of the applications below.</p>` : ''}
<dl class="meta">
<dt>Sync</dt><dd>${SYNC_WORDS[sync.state]}${sync.lastError ? html`: ${sync.lastError}` : ''}</dd>
<dt>Last synced</dt><dd>${when(sync.lastSuccessAt)}</dd>
<dt>Next sync</dt><dd>${when(sync.nextRunAt)}</dd>
<dt>Records stored</dt><dd>${sync.recordsSynced}${sync.skipped > 0 ? html` (${sync.skipped} items skipped by the last sync)` : ''}</dd>
</dl>
<h3>Applications with access</h3>
${c.grants.length > 0 ? html`<ul class="grants">${grants}</ul>` : html`<p class="meta">No application can read this connection.</p>`}
${c.status === 'deleting' ? '' : html`<div class="actions"><a class="button" href="/account/connections/${c.id}/delete">Delete this connection…</a></div>`}
</section>`;
}

export function overviewPage(v: {
  displayName: string;
  connections: ConnectionView[];
  csrf: string;
  notice?: Notice;
}): string {
  return layout(
    'Your connections',
    'connections',
    html`<h1>Your connections</h1>
<p>Signed in as <strong>${v.displayName || 'you'}</strong>. Every application reads your data only through what you allow here, and loses it the moment you revoke.</p>
${v.notice ? html`<p class="notice" role="status">${NOTICES[v.notice]}</p>` : ''}
${recordsChart(v.connections)}
${v.connections.length > 0 ? v.connections.map((c) => connectionCard(c, v.csrf)) : html`<p>You have not connected anything yet. Applications ask you to connect a source; it then shows here.</p>`}`,
    v.csrf,
  );
}

export function deletePage(v: { connection: ConnectionView; csrf: string }): string {
  const c = v.connection;
  return layout(
    `Delete ${c.integrationName}`,
    undefined,
    html`<h1>Delete your ${c.integrationName} connection?</h1>
<div class="warning" role="alert">
<p><strong>This cannot be undone.</strong> Your Personal Server destroys the ${c.sync.recordsSynced} records it holds from ${c.integrationName} together with their encryption key (crypto-shredding): nobody, not even the operator, can read them again.</p>
<p>${c.grants.length > 0 ? html`${c.grants.map((g) => g.applicationName).join(', ')} lose${c.grants.length === 1 ? 's' : ''} access at once.` : 'No application has access now.'} Our access to ${c.integrationName} is revoked at the source where it allows that.</p>
</div>
<form method="post" action="/account/connections/${c.id}/delete">
<input type="hidden" name="csrf" value="${v.csrf}">
<p><label><input type="checkbox" name="confirm" value="yes" required> I understand that my ${c.integrationName} data here is destroyed</label></p>
<div class="actions"><button class="danger" type="submit">Delete the connection and its data</button><a class="button" href="/account">Keep it</a></div>
</form>`,
    v.csrf,
  );
}

export function activityPage(v: { accesses: AccessView[]; csrf: string }): string {
  const rows = v.accesses.map(
    (a) =>
      html`<tr><td>${when(a.at)}</td><td>${a.applicationName}</td><td>${a.action}${a.what ? html`<br><span class="meta">${a.what}</span>` : ''}</td><td>${a.outcome}</td><td>${a.decidingLayer || '—'}</td></tr>`,
  );
  return layout(
    'Access log',
    'activity',
    html`<h1>Access log</h1>
<p>Every read of your data and every tool used for you, as the audit log recorded it (newest first). The log is append-only and signed: <a href="/v1/me/audit/entries">its entries</a> come with proofs any auditor can check.</p>
${v.accesses.length > 0 ? html`<div class="table-wrap" role="region" aria-label="Access log entries" tabindex="0"><table><caption class="meta">The last ${v.accesses.length} entries</caption><thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">What</th><th scope="col">Outcome</th><th scope="col">Decided by</th></tr></thead><tbody>${rows}</tbody></table></div>` : html`<p>No application has accessed your data yet.</p>`}`,
    v.csrf,
  );
}

/** A portal error the person can act on (always HTML, never problem JSON). */
export function portalErrorPage(title: string, message: string, code: string | undefined): string {
  return layout(
    title,
    undefined,
    html`<h1>${title}</h1><p role="alert">${message}</p><div class="actions"><a class="button" href="/account">Back to your connections</a></div>${code ? html`<p class="meta">Error code: <code>${code}</code></p>` : ''}`,
  );
}
