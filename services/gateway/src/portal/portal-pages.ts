import { html, type SafeHtml } from '../http/html.js';
import { takesImports } from '../sync/sync.service.js';
import type { AccessView, ConnectionView, RuleTarget, RuleView } from './portal.service.js';

/**
 * The person's portal, server-rendered: no script, one stylesheet from this origin, forms
 * for every action (so it works with a keyboard, a screen reader and without JavaScript),
 * every dynamic value escaped by `html`.
 */
export const PORTAL_CSP =
  "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/** The access log checks its proofs in the browser: its own script, and fetches to this origin. */
export const ACTIVITY_CSP =
  "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/** The upload page: its one script (from this origin) sends the file with a progress bar. */
export const IMPORT_CSP =
  "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** The security page adds a passkey (WebAuthn needs script): its own script and the WebAuthn bundle, both from this origin. */
export const SECURITY_CSP =
  "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

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
ul.types{margin:.25rem 0 0;padding-left:1.1rem}form.inline{display:inline}form.rename{margin:.35rem 0}
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
fieldset{border:1px solid var(--line);border-radius:.4rem}select,input[type=text],input:not([type]){font:inherit;padding:.35rem;max-width:100%}
.actions{display:flex;flex-wrap:wrap;gap:.75rem;margin-top:1rem}
@media (max-width:30rem){main{padding:.75rem}.card{padding:.75rem}}
`;

export type Notice =
  | 'revoked'
  | 'deleted'
  | 'deleting'
  | 'confirmed'
  | 'rule_added'
  | 'rule_removed'
  | 'passkey_added'
  | 'passkey_removed'
  | 'passkey_renamed'
  | 'passkey_trusted'
  | 'reconnected'
  | 'reconnect_failed'
  | 'passkey_untrusted'
  | 'signed_out_others';

const NOTICES: Record<Notice, string> = {
  revoked: 'Access revoked. That application’s next request for this data fails.',
  deleted: 'The connection is deleted: its records and their key are destroyed.',
  deleting:
    'Every application lost access. Your Personal Server has not confirmed destroying the records yet; it is asked again until it does.',
  confirmed: 'You confirmed with your passkey. You can now do what you started again.',
  rule_added: 'Rule added. It applies from the next request of every application it names.',
  rule_removed: 'Rule removed.',
  passkey_added: 'Passkey added. You can sign in with it from now on.',
  passkey_removed: 'Passkey removed. It can no longer sign you in.',
  passkey_renamed: 'Passkey renamed.',
  passkey_trusted: 'Your Personal Server trusts this passkey now: it can sign what you allow.',
  reconnected: 'Reconnected. The first sync with your renewed access has started.',
  reconnect_failed: 'Not reconnected: the source did not give access. Nothing changed; you can try again.',
  passkey_untrusted:
    'Passkey added. Your Personal Server does not trust it yet: choose “Trust this passkey” and confirm with a passkey it trusts.',
  signed_out_others: 'Every other browser and device is signed out.',
};

const when = (d: Date | undefined) =>
  d ? html`<time datetime="${d.toISOString()}">${d.toISOString().slice(0, 16).replace('T', ' ')} UTC</time>` : 'never';

/** What the Personal Server holds (its own count), or what the syncs wrote when it did not answer. */
const recordsStored = (c: ConnectionView) =>
  c.stored ? c.stored.reduce((sum, t) => sum + t.count, 0) : c.sync.recordsSynced;

/** Per record type: how many, and what the type is (the catalog's words). */
const storedTypes = (c: ConnectionView) =>
  c.stored && c.stored.length > 0
    ? html`<ul class="types">${c.stored.map((t) => html`<li>${t.count} <code>${t.type}</code>${t.description ? html` <span class="meta">${t.description}</span>` : ''}</li>`)}</ul>`
    : '';

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

function layout(
  title: string,
  current: 'connections' | 'rules' | 'activity' | 'security' | undefined,
  body: SafeHtml,
  csrf?: string,
  scripts: string[] = [],
): string {
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
<nav aria-label="Your account"><ul>${[link('/account', 'Connections', 'connections'), link('/account/rules', 'Your rules', 'rules'), link('/account/activity', 'Access log', 'activity'), link('/account/security', 'Passkeys and sessions', 'security')]}</ul></nav>
${csrf ? html`<form class="inline" method="post" action="/account/sign-out"><input type="hidden" name="csrf" value="${csrf}"><button type="submit">Sign out</button></form>` : ''}
</header>
<main id="main">
${body}
</main>
${scripts.map((src) => html`<script src="${src}"></script>`)}
</body>
</html>`.value;
}

/** Bars with their numbers: people would rather look than read (the title carries the same figures for screen readers). */
function barChart(id: string, caption: string, rows: { label: string; value: number }[]): SafeHtml {
  if (rows.length === 0) return html``;
  const max = Math.max(1, ...rows.map((r) => r.value));
  const rowHeight = 28;
  const height = rows.length * rowHeight + 8;
  const bars = rows.map((r, i) => {
    const width = Math.round((r.value / max) * 300);
    const y = i * rowHeight + 4;
    return html`<text x="0" y="${y + 17}">${r.label.length > 20 ? `${r.label.slice(0, 19)}…` : r.label}</text><rect class="bar" x="160" y="${y + 4}" width="${Math.max(width, 1)}" height="18" rx="3"></rect><text x="${168 + width}" y="${y + 17}">${r.value}</text>`;
  });
  return html`<figure>
<svg role="img" aria-labelledby="${id}-title" viewBox="0 0 560 ${height}" width="100%" preserveAspectRatio="xMinYMin meet"><title id="${id}-title">${caption}: ${rows.map((r) => `${r.label} ${r.value}`).join(', ')}</title>${bars}</svg>
<figcaption class="meta">${caption}.</figcaption>
</figure>`;
}

function recordsChart(connections: ConnectionView[]): SafeHtml {
  const rows = connections.filter((c) => c.status === 'active' || c.status === 'needs_reauth');
  return barChart(
    'records-chart',
    'Records stored in your Personal Server, per source',
    rows.map((c) => ({ label: c.integrationName, value: recordsStored(c) })),
  );
}

function connectionCard(c: ConnectionView, csrf: string): SafeHtml {
  const grants = c.grants.map(
    (g) => html`<li>
<h4>${g.applicationName}</h4>
<p class="meta">Allowed ${when(g.grantedAt)}; last read ${when(g.lastReadAt)}. It can:</p>
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
${
  c.status === 'needs_reauth'
    ? c.reconnectable
      ? html`<div class="warning"><p>${c.integrationName} no longer accepts our access. Nothing syncs until you sign in to ${c.integrationName} again.</p>
<form method="post" action="/account/connections/${c.id}/reconnect"><input type="hidden" name="csrf" value="${csrf}"><button class="primary" type="submit" aria-label="Reconnect ${c.integrationName}: sign in to it again">Reconnect</button></form></div>`
      : html`<p class="warning">${c.integrationName} no longer accepts our access. Nothing syncs until you connect it again from one of the applications below.</p>`
    : ''
}
<dl class="meta">
<dt>Sync</dt><dd>${SYNC_WORDS[sync.state]}${sync.lastError ? html`: ${sync.lastError}` : ''}</dd>
<dt>Last synced</dt><dd>${when(sync.lastSuccessAt)}</dd>
<dt>Next sync</dt><dd>${when(sync.nextRunAt)}</dd>
<dt>Records stored</dt><dd>${recordsStored(c)}${sync.skipped > 0 ? html` (${sync.skipped} items skipped by the last sync)` : ''}${storedTypes(c)}</dd>
</dl>
<h3>Applications with access</h3>
${c.grants.length > 0 ? html`<ul class="grants">${grants}</ul>` : html`<p class="meta">No application can read this connection.</p>`}
${c.status === 'deleting' ? '' : html`<div class="actions">${c.status === 'active' && takesImports(c.integration) ? html`<a class="button" href="/account/connections/${c.id}/import">Upload a viewing-history file…</a>` : ''}<a class="button" href="/account/connections/${c.id}/delete">Delete this connection…</a></div>`}
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
<p><strong>This cannot be undone.</strong> Your Personal Server destroys the ${recordsStored(c)} records it holds from ${c.integrationName} together with their encryption key (crypto-shredding): nobody, not even the operator, can read them again.</p>
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

/** Uploading a Netflix export into the person's own connection, with progress and the outcome. */
export function importPage(v: {
  connection: { id: string; integrationName: string };
  csrf: string;
  maxBytes: number;
}): string {
  const c = v.connection;
  return layout(
    `Upload to ${c.integrationName}`,
    undefined,
    html`<h1>Upload your ${c.integrationName} viewing history</h1>
<p>Netflix has no API for your history: download <code>ViewingActivity.csv</code> from your Netflix account (Account → Profile → Download your personal information) and upload it here. It goes into your Personal Server, encrypted; uploading the same file again adds nothing.</p>
<noscript><p class="warning">Uploading a file here needs JavaScript (it is sent with a progress bar). Your application can upload it for you instead.</p></noscript>
<form id="import-form" method="post" action="/account/connections/${c.id}/imports" data-csrf="${v.csrf}" data-max-bytes="${String(v.maxBytes)}">
<p><label for="import-file">The file (<code>ViewingActivity.csv</code>)</label><br><input id="import-file" name="file" type="file" accept=".csv,text/csv" required></p>
<div class="actions"><button class="primary" type="submit">Upload</button><a class="button" href="/account">Back to your connections</a></div>
</form>
<p><label for="import-progress">Upload progress</label> <progress id="import-progress" max="100" value="0">0%</progress></p>
<div id="import-result" role="status" aria-live="polite"></div>`,
    v.csrf,
    ['/account/assets/import.js'],
  );
}

/** Sends the chosen file as text/csv with upload progress, then shows what was read, written and skipped (by line). */
export const IMPORT_SCRIPT = `'use strict';
(function () {
  var form = document.getElementById('import-form');
  var input = document.getElementById('import-file');
  var progress = document.getElementById('import-progress');
  var result = document.getElementById('import-result');
  function say(nodes) { result.replaceChildren.apply(result, nodes); }
  function text(tag, value) { var e = document.createElement(tag); e.textContent = value; return e; }
  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var file = input.files && input.files[0];
    if (!file) { say([text('p', 'Choose the file first.')]); return; }
    var max = Number(form.dataset.maxBytes);
    if (max > 0 && file.size > max) { say([text('p', 'This file is larger than the ' + Math.floor(max / 1048576) + ' MB an upload may be.')]); return; }
    var button = form.querySelector('button');
    button.disabled = true;
    progress.value = 0;
    say([text('p', 'Uploading ' + file.name + '…')]);
    var xhr = new XMLHttpRequest();
    xhr.open('POST', form.getAttribute('action'));
    xhr.setRequestHeader('content-type', 'text/csv');
    xhr.setRequestHeader('accept', 'application/json');
    xhr.setRequestHeader('x-csrf-token', form.dataset.csrf);
    xhr.upload.addEventListener('progress', function (e) {
      if (e.lengthComputable) { progress.value = Math.round((e.loaded / e.total) * 100); progress.textContent = progress.value + '%'; }
    });
    xhr.addEventListener('load', function () {
      button.disabled = false;
      var body = {};
      try { body = JSON.parse(xhr.responseText || '{}'); } catch (e) { body = {}; }
      if (xhr.status !== 200) { say([text('p', 'The upload was refused: ' + (body.detail || xhr.statusText) + (body.code ? ' (' + body.code + ')' : ''))]); return; }
      progress.value = 100; progress.textContent = '100%';
      var nodes = [text('p', 'Done: ' + body.imported + ' rows read, ' + body.written + ' new or changed, ' + body.unchanged + ' already there, ' + body.rejectedTotal + ' skipped.')];
      if (body.rejected && body.rejected.length > 0) {
        var list = document.createElement('ul');
        body.rejected.forEach(function (r) { list.appendChild(text('li', 'Line ' + r.line + ': ' + r.message)); });
        nodes.push(list);
      }
      say(nodes);
    });
    xhr.addEventListener('error', function () { button.disabled = false; say([text('p', 'The upload did not reach the gateway. Try again.')]); });
    xhr.send(file);
  });
})();
`;

/** An export asked for from another site (an identity provider sending the browser back): the link, from this origin. */
export function exportLinkPage(csrf: string): string {
  return layout(
    'Download everything',
    undefined,
    html`<h1>Download everything</h1>
<p>Your download is ready to start from here: your account, rules and every connection with all its records, decrypted for you alone.</p>
<div class="actions"><a class="button primary" href="/account/export">Download everything (JSON)</a><a class="button" href="/account/security">Back</a></div>`,
    csrf,
  );
}

/** What deleting the account destroys and keeps, and the confirmation form. */
export function deleteAccountPage(v: { connections: ConnectionView[]; csrf: string }): string {
  const live = v.connections.filter((c) => c.status !== 'deleted');
  const records = live.reduce((sum, c) => sum + recordsStored(c), 0);
  const applications = [...new Set(live.flatMap((c) => c.grants.map((g) => g.applicationName)))];
  return layout(
    'Delete your account',
    undefined,
    html`<h1>Delete your account?</h1>
<div class="warning" role="alert">
<p><strong>This cannot be undone.</strong></p>
<ul>
<li>${live.length > 0 ? html`Your ${live.length === 1 ? 'connection' : `${live.length} connections`} (${live.map((c) => c.integrationName).join(', ')}) ${live.length === 1 ? 'is' : 'are'} deleted: your Personal Server destroys the ${records} records it holds together with their encryption keys (crypto-shredding), and our access is revoked at each source where it allows that.` : 'You have no connections.'}</li>
<li>${applications.length > 0 ? html`${applications.join(', ')} lose${applications.length === 1 ? 's' : ''} access at once, and so does every application you signed in to with this account.` : 'Every application you signed in to with this account loses access at once.'}</li>
<li>Your rules, your passkeys and every session of yours are removed; you are signed out everywhere.</li>
</ul>
<p>The access log is kept: it is signed and append-only. It refers to your account by its id, not by your name.</p>
</div>
<form method="post" action="/account/delete">
<input type="hidden" name="csrf" value="${v.csrf}">
<p><label><input type="checkbox" name="confirm" value="yes" required> I understand that my account and all my data here are destroyed</label></p>
<div class="actions"><button class="danger" type="submit">Delete my account</button><a class="button" href="/account/security">Keep it</a></div>
</form>`,
    v.csrf,
  );
}

/** After the account is gone: nobody is signed in any more. */
export function accountDeletedPage(): string {
  return layout(
    'Account deleted',
    undefined,
    html`<h1>Your account is deleted</h1>
<p role="status">Your connections, their data and your passkeys are gone, and every application lost access. You may also remove the passkey from your device or password manager: it no longer signs in anywhere.</p>
<div class="actions"><a class="button" href="/v1/auth/signin?return_to=%2Faccount">Create a new account</a></div>`,
  );
}

export interface LogKeyView {
  keyName: string;
  /** The log's origin line, which every checkpoint of it must carry. */
  origin: string;
  /** base64 raw Ed25519 public key. */
  publicKey: string;
}

export function activityPage(v: {
  accesses: AccessView[];
  csrf: string;
  logKey: LogKeyView | undefined;
  userId: string;
  now: number;
}): string {
  const rows = v.accesses.map(
    (a) =>
      html`<tr><td>${when(a.at)}</td><td>${a.applicationName}</td><td>${a.action}${a.what ? html`<br><span class="meta">${a.what}</span>` : ''}</td><td>${a.outcome}</td><td>${a.decidingLayer || '—'}</td><td class="proof" data-event-id="${a.eventId}" data-application-id="${a.applicationId}" data-outcome="${a.outcomeName}">${v.logKey ? 'Checking…' : 'Log key unavailable'}</td></tr>`,
  );
  const weekAgo = v.now - 7 * 24 * 3600_000;
  const reads = new Map<string, number>();
  for (const a of v.accesses)
    if (a.action === 'Read data' && a.outcome === 'allowed' && (a.at?.getTime() ?? 0) >= weekAgo)
      reads.set(a.applicationName, (reads.get(a.applicationName) ?? 0) + 1);
  return layout(
    'Access log',
    'activity',
    html`<h1>Access log</h1>
<p>Every read of your data and every tool used for you, as the audit log recorded it (newest first). The log is append-only and signed; this page checks, in your browser, that each entry is in a checkpoint signed by the log's key${v.logKey ? html` (<code>${v.logKey.keyName}</code>, Ed25519 <code>${v.logKey.publicKey}</code>: compare it with the key your operator publishes)` : ''}.</p>
${barChart(
  'reads-chart',
  'Reads of your data per application, last 7 days',
  [...reads].map(([label, value]) => ({ label, value })),
)}
${v.accesses.length > 0 ? html`<div class="table-wrap" role="region" aria-label="Access log entries" tabindex="0" id="access-log"${v.logKey ? html` data-key-name="${v.logKey.keyName}" data-public-key="${v.logKey.publicKey}" data-origin="${v.logKey.origin}" data-user-id="${v.userId}"` : ''}><table><caption class="meta">The last ${v.accesses.length} entries</caption><thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">What</th><th scope="col">Outcome</th><th scope="col">Decided by</th><th scope="col">In the signed log</th></tr></thead><tbody>${rows}</tbody></table></div>` : html`<p>No application has accessed your data yet.</p>`}`,
    v.csrf,
    v.logKey && v.accesses.length > 0 ? ['/account/assets/activity.js'] : [],
  );
}

/**
 * The access log's proof check, in the browser and with WebCrypto only: for each entry, the
 * leaf hash of its canonical bytes (RFC 6962), the RFC 9162 inclusion proof up to the
 * checkpoint's root, and the checkpoint's C2SP signed note verified with the log's Ed25519
 * key. Nothing here trusts the server's word that an entry is logged.
 */
export const ACTIVITY_SCRIPT = `'use strict';
(function () {
  var table = document.getElementById('access-log');
  if (!table || !table.dataset.publicKey) return;
  var subtle = window.crypto.subtle;
  var keyName = table.dataset.keyName;
  var origin = table.dataset.origin;
  var userId = table.dataset.userId;
  function b64(s) { var bin = atob(s); var out = new Uint8Array(bin.length); for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i); return out; }
  function hex(bytes) { return Array.prototype.map.call(new Uint8Array(bytes), function (b) { return ('0' + b.toString(16)).slice(-2); }).join(''); }
  function concat(parts) { var n = 0; parts.forEach(function (p) { n += p.length; }); var out = new Uint8Array(n); var o = 0; parts.forEach(function (p) { out.set(p, o); o += p.length; }); return out; }
  function sha256(bytes) { return subtle.digest('SHA-256', bytes).then(function (d) { return new Uint8Array(d); }); }
  function equal(a, b) { if (a.length !== b.length) return false; for (var i = 0; i < a.length; i++) if (a[i] !== b[i]) return false; return true; }
  var publicKey = b64(table.dataset.publicKey);
  var keyPromise = subtle.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify']);
  var enc = new TextEncoder();
  var keyIdPromise = sha256(concat([enc.encode(keyName + '\\n'), new Uint8Array([1]), publicKey])).then(function (d) { return d.slice(0, 4); });

  // RFC 9162 section 2.1.3.2.
  function rootFromInclusion(leaf, index, size, proof) {
    if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size)
      return Promise.reject(new Error('the entry is not inside the checkpoint'));
    var fn = index, sn = size - 1, r = Promise.resolve(leaf);
    proof.forEach(function (p) {
      r = r.then(function (cur) {
        if (sn === 0) throw new Error('the proof is too long');
        var next;
        if (fn % 2 === 1 || fn === sn) {
          next = sha256(concat([new Uint8Array([1]), p, cur]));
          while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
        } else next = sha256(concat([new Uint8Array([1]), cur, p]));
        fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
        return next;
      });
    });
    return r.then(function (root) { if (sn !== 0) throw new Error('the proof is too short'); return root; });
  }

  function verifyNote(checkpoint) {
    var note = checkpoint.signedNote;
    var split = note.indexOf('\\n\\n');
    if (split < 0) return Promise.reject(new Error('not a signed note'));
    var text = note.slice(0, split + 1);
    var body = text.split('\\n');
    if (body[0] !== origin) return Promise.reject(new Error('the checkpoint is of another log'));
    if (body[1] !== String(checkpoint.treeSize) || body[2] !== checkpoint.rootHash)
      return Promise.reject(new Error('the checkpoint does not say what its note signs'));
    var prefix = '\\u2014 ' + keyName + ' ';
    var signatures = note.slice(split + 2).split('\\n').filter(function (l) { return l.indexOf(prefix) === 0; })
      .map(function (l) { try { return b64(l.slice(prefix.length)); } catch (e) { return new Uint8Array(0); } })
      .filter(function (raw) { return raw.length === 68; });
    return Promise.all([keyPromise, keyIdPromise]).then(function (k) {
      // Any line may carry the name; only one whose key id is the log key's counts.
      var mine = signatures.filter(function (raw) { return equal(raw.slice(0, 4), k[1]); });
      if (mine.length === 0) throw new Error('no signature by the log key');
      return Promise.all(mine.map(function (raw) { return subtle.verify({ name: 'Ed25519' }, k[0], raw.slice(4), enc.encode(text)); }));
    }).then(function (results) { if (results.indexOf(true) < 0) throw new Error('the signature does not verify'); });
  }

  function check(cell) {
    var eventId = cell.dataset.eventId;
    return fetch('/v1/me/audit/entries/' + encodeURIComponent(eventId), { credentials: 'same-origin' })
      .then(function (res) { if (!res.ok) throw new Error('the log did not answer (' + res.status + ')'); return res.json(); })
      .then(function (answer) {
        if (!answer.checkpoint) { cell.textContent = 'Not in a signed checkpoint yet'; cell.dataset.proof = 'pending'; return; }
        var canonical = b64(answer.canonicalEntry);
        // The logged bytes must be this row: this event, this person, this application, this outcome.
        var logged = JSON.parse(new TextDecoder().decode(canonical));
        var event = logged.event || {};
        if (logged.eventId !== eventId || logged.index !== answer.entry.index) throw new Error('the entry is another event');
        if (event.userId !== userId) throw new Error('the entry is not about you');
        if (event.applicationId !== cell.dataset.applicationId || (event.outcome || 'AUDIT_OUTCOME_UNSPECIFIED') !== cell.dataset.outcome)
          throw new Error('the log says something else than this row');
        return sha256(concat([new Uint8Array([0]), canonical])).then(function (leaf) {
          if (hex(leaf) !== answer.entry.leafHash) throw new Error('the leaf hash does not match the entry');
          return rootFromInclusion(leaf, answer.entry.index, answer.checkpoint.treeSize, answer.inclusionProof.map(b64));
        }).then(function (root) {
          if (!equal(root, b64(answer.checkpoint.rootHash))) throw new Error('the proof does not lead to the signed root');
          return verifyNote(answer.checkpoint);
        }).then(function () {
          cell.textContent = 'Verified (signed log of ' + answer.checkpoint.treeSize + ' entries)';
          cell.dataset.proof = 'verified';
        });
      })
      .catch(function (error) { cell.textContent = 'NOT verified: ' + error.message; cell.dataset.proof = 'failed'; });
  }

  var cells = Array.prototype.slice.call(table.querySelectorAll('td.proof'));
  // A few at a time: the log is asked once per entry.
  (function next() { var batch = cells.splice(0, 4); if (batch.length) Promise.all(batch.map(check)).then(next); })();
})();
`;

export function rulesPage(v: {
  rules: RuleView[];
  targets: { integrationName: string; targets: RuleTarget[] }[];
  applications: { id: string; name: string }[];
  csrf: string;
  notice?: Notice;
}): string {
  const rows = v.rules.map(
    (r) =>
      html`<tr><td>${r.effect === 'deny' ? 'Never' : 'Allowed'}</td><td>${r.what}${r.resources.length > 0 ? html`<br><span class="meta">only ${r.resources.join(', ')}</span>` : ''}</td><td>${r.applicationName ?? 'Every application'}</td><td><form class="inline" method="post" action="/account/rules/${r.id}/delete"><input type="hidden" name="csrf" value="${v.csrf}"><button type="submit" aria-label="Remove the rule: ${r.effect === 'deny' ? 'never' : 'allowed'} ${r.what}">Remove</button></form></td></tr>`,
  );
  const form =
    v.targets.length === 0
      ? html`<p class="meta">Connect a source first: rules are about what your connections let applications do.</p>`
      : html`<form method="post" action="/account/rules">
<input type="hidden" name="csrf" value="${v.csrf}">
<fieldset><legend>The rule</legend>
<p><label><input type="radio" name="effect" value="deny" checked> Never allow</label>
<label><input type="radio" name="effect" value="allow"> Allow</label></p>
</fieldset>
<p><label for="target">What</label><br>
<select id="target" name="target" required>${v.targets.map((g) => html`<optgroup label="${g.integrationName}">${g.targets.map((t) => html`<option value="${t.value}">${t.label}</option>`)}</optgroup>`)}</select></p>
<p><label for="applicationId">For</label><br>
<select id="applicationId" name="applicationId"><option value="">Every application</option>${v.applications.map((a) => html`<option value="${a.id}">${a.name}</option>`)}</select></p>
<p><label for="resource">Only this resource (optional, e.g. <code>repo:acme/*</code>)</label><br>
<input id="resource" name="resource" maxlength="500"></p>
<div class="actions"><button class="primary" type="submit">Add the rule</button></div>
</form>`;
  return layout(
    'Your rules',
    'rules',
    html`<h1>Your rules</h1>
<p>Your rules apply to every application acting for you. An application can do something only when your organization, the application's own rules and yours all allow it; a “never” anywhere wins.</p>
${v.notice ? html`<p class="notice" role="status">${NOTICES[v.notice]}</p>` : ''}
${v.rules.length > 0 ? html`<div class="table-wrap" role="region" aria-label="Your rules" tabindex="0"><table><thead><tr><th scope="col">Rule</th><th scope="col">What</th><th scope="col">For</th><th scope="col">Remove</th></tr></thead><tbody>${rows}</tbody></table></div>` : html`<p>You have no rules of your own: what you allowed on the consent pages applies as it is.</p>`}
<h2>Add a rule</h2>
${form}`,
    v.csrf,
  );
}

export interface SecurityView {
  passkeys: {
    id: string;
    credentialId: string;
    name: string;
    createdAt?: Date;
    lastUsedAt?: Date;
    synced: boolean;
    /** Whether the Personal Server trusts it to sign consents; undefined: nothing pinned yet, or unknown. */
    trusted?: boolean;
  }[];
  sessions: { id: string; createdAt?: Date; expiresAt?: Date; method: string; current: boolean }[];
  csrf: string;
  notice?: Notice;
}

export function securityPage(v: SecurityView): string {
  const only = v.passkeys.length <= 1;
  const passkeys = v.passkeys.map((p, i) => {
    const label = p.name || `Passkey ${i + 1}`;
    const spoken = p.name ? `passkey ${p.name}` : `passkey ${i + 1}`;
    const trust =
      p.trusted === true
        ? html`<p class="meta">Trusted by your Personal Server: it can sign what you allow.</p>`
        : p.trusted === false
          ? html`<p class="meta">Not trusted by your Personal Server yet: it cannot sign what you allow. <button type="button" class="trust" data-credential-id="${p.credentialId}" aria-label="Trust this passkey, ${spoken}">Trust this passkey</button></p>`
          : '';
    return html`<li><strong>${label}</strong> <span class="meta">${p.synced ? 'synced across your devices' : 'on one device'}; added ${when(p.createdAt)}, last used ${when(p.lastUsedAt)}</span>
${trust}
<form class="rename" method="post" action="/account/passkeys/${p.id}/rename"><input type="hidden" name="csrf" value="${v.csrf}"><label for="name-${p.id}">Name of ${spoken}</label> <input id="name-${p.id}" name="name" type="text" required maxlength="64" value="${p.name}" placeholder="e.g. Work laptop" autocomplete="off"> <button type="submit" aria-label="Save name of ${spoken}">Save name</button></form>
${only ? html`<p class="meta">Your only passkey: add another before you can remove it.</p>` : html`<form class="inline" method="post" action="/account/passkeys/${p.id}/remove"><input type="hidden" name="csrf" value="${v.csrf}"><button type="submit" aria-label="Remove ${spoken}">Remove</button></form>`}</li>`;
  });
  const sessions = v.sessions.map(
    (s) =>
      html`<tr><td>${when(s.createdAt)}${s.current ? html` <strong>(this browser)</strong>` : ''}</td><td>${s.method === 'sso' ? 'your organization’s sign-in' : 'passkey'}</td><td>${when(s.expiresAt)}</td></tr>`,
  );
  return layout(
    'Passkeys and sessions',
    'security',
    html`<h1>Passkeys and sessions</h1>
${v.notice ? html`<p class="notice" role="status">${v.notice ? NOTICES[v.notice] : ''}</p>` : ''}
<h2>Your passkeys</h2>
<ul class="grants">${passkeys}</ul>
<div class="actions"><button class="primary" type="button" id="add-passkey">Add a passkey</button></div>
<p id="passkey-status" role="status" aria-live="polite"></p>
<h2>Where you are signed in</h2>
<div class="table-wrap" role="region" aria-label="Your sessions" tabindex="0"><table><thead><tr><th scope="col">Signed in</th><th scope="col">With</th><th scope="col">Ends</th></tr></thead><tbody>${sessions}</tbody></table></div>
${v.sessions.length > 1 ? html`<form method="post" action="/account/sessions/sign-out-others"><input type="hidden" name="csrf" value="${v.csrf}"><div class="actions"><button type="submit">Sign out everywhere else</button></div></form>` : ''}
<h2>Your account</h2>
<p><a href="/account/export">Download everything (JSON)</a> Your account, rules and every connection with all its records, decrypted for you alone.</p>
<p><a href="/account/delete">Delete your account…</a> Your connections and their data are destroyed and every application loses access.</p>`,
    v.csrf,
    ['/v1/auth/assets/webauthn.js', '/account/assets/security.js'],
  );
}

/**
 * The security page's behaviour: add a passkey (the account's own session asks; identity
 * checks it is recent), then have the Personal Server trust it, endorsed by a passkey it
 * trusts already; and "Trust this passkey" for one added without that.
 */
export const SECURITY_SCRIPT = `'use strict';
(function () {
  var lib = window.SimpleWebAuthnBrowser;
  var status = document.getElementById('passkey-status');
  var button = document.getElementById('add-passkey');
  var csrfField = document.querySelector('input[name=csrf]');
  var csrf = csrfField ? csrfField.value : '';
  function call(path, body) {
    return fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
      body: JSON.stringify(body),
    }).then(function (res) {
      return res.text().then(function (text) {
        var json = text ? JSON.parse(text) : {};
        if (!res.ok) { var e = new Error(json.detail || res.statusText); e.code = json.code; throw e; }
        return json;
      });
    });
  }
  // Resolves to whether the Personal Server trusts the passkey now (false: nothing to do yet).
  function trust(credentialId) {
    return call('/account/passkeys/trust/options', { credentialId: credentialId }).then(function (answer) {
      if (!answer.needed) return false;
      status.textContent = 'Now confirm with a passkey your Personal Server already trusts…';
      return lib.startAuthentication({ optionsJSON: answer.options }).then(function (response) {
        return call('/account/passkeys/trust', {
          credentialId: credentialId,
          nonce: answer.nonce,
          notAfter: answer.notAfter,
          response: response,
        }).then(function (result) { return result.trusted; });
      });
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll('button.trust'), function (trustButton) {
    trustButton.addEventListener('click', function () {
      trustButton.disabled = true;
      trust(trustButton.getAttribute('data-credential-id'))
        .then(function (trusted) { window.location.assign('/account/security' + (trusted ? '?notice=passkey_trusted' : '')); })
        .catch(function (error) {
          trustButton.disabled = false;
          status.textContent = 'That did not work: ' + (error && error.message ? error.message : error);
        });
    });
  });
  button.addEventListener('click', function () {
    button.disabled = true;
    status.textContent = 'Waiting for your new passkey…';
    var added;
    call('/v1/auth/passkeys/registration/options', {})
      .then(function (options) { return lib.startRegistration({ optionsJSON: options }); })
      .then(function (response) {
        added = response.id;
        return call('/v1/auth/passkeys/registration/verify', { response: response });
      })
      .then(function () {
        return trust(added).then(
          function (trusted) { return trusted ? 'passkey_trusted' : 'passkey_added'; },
          function () { return 'passkey_untrusted'; }
        );
      })
      .then(function (notice) { window.location.assign('/account/security?notice=' + notice); })
      .catch(function (error) {
        button.disabled = false;
        if (error && error.code === 'reauthentication_required') {
          window.location.assign('/v1/auth/signin?prompt=login&return_to=' + encodeURIComponent('/account/security?notice=confirmed'));
          return;
        }
        var cancelled = error && (error.name === 'NotAllowedError' || error.name === 'AbortError');
        status.textContent = cancelled ? 'The passkey prompt was cancelled.' : 'That did not work: ' + (error && error.message ? error.message : error);
      });
  });
})();
`;

/**
 * On to the source's sign-in for a reconnect: a link, not a redirect, because the pages'
 * `form-action 'self'` would stop a form's answer from leaving for another site.
 */
export function reconnectPage(integrationName: string, sourceUrl: string): string {
  return layout(
    `Sign in to ${integrationName} again`,
    undefined,
    html`<h1>Sign in to ${integrationName} again</h1>
<p>${integrationName} asks you to sign in and confirm; then you come back here and the sync starts again. No application gets any new access.</p>
<p class="meta">Sign in with the same ${integrationName} account as before: the applications you allowed read what this connection brings in.</p>
<div class="actions"><a class="button primary" href="${sourceUrl}" rel="noreferrer">Continue to ${integrationName}</a><a class="button" href="/account">Cancel</a></div>`,
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
