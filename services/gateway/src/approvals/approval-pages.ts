import { layout } from '../connect/connect-pages.js';
import { html } from '../http/html.js';
import { escapeInvisible } from './approval-display.js';

export interface ApprovalPageView {
  applicationName: string;
  /** The MCP operation held: tools/call | resources/read | prompts/get. */
  method: string;
  /** What the agent named (`github.delete_repo`, a resource URI, a prompt), invisible characters escaped. */
  name: string;
  /** What the upstream server says about it: its claims, shown as such. */
  tool: { title?: string; description?: string; annotations?: Record<string, unknown> };
  /** The arguments, pretty-printed JSON, invisible characters escaped. */
  arguments: string;
  expiresAt: Date;
  action: string;
  csrf: string;
  /** Signed in as the person: Approve signs; else the page leads to sign-in first and shows nothing of the call. */
  signedIn: boolean;
  signInUrl: string;
  challenge?: string;
  credentialIds?: string[];
  error?: string;
}

/** How much of a server's title and description the page shows: claims, not a manual. */
const MAX_TITLE = 120;
const MAX_DESCRIPTION = 600;

/** A server's text, its invisible characters written out and cut to `max` characters. */
function claim(text: string | undefined, max: number): string | undefined {
  if (!text) return undefined;
  const chars = [...escapeInvisible(text)];
  return chars.length > max ? `${chars.slice(0, max).join('')}…` : chars.join('');
}

/**
 * What the annotations say, in words — the upstream server's claims about its own tool,
 * which the server may get wrong or lie about: never a reassurance, never trusted for a
 * decision. Only the warning is worth showing; "read-only" from the server proves nothing.
 */
function hints(annotations: Record<string, unknown> | undefined) {
  const words: string[] = [];
  if (annotations?.destructiveHint === true) words.push('Destructive: it may delete or overwrite data.');
  if (annotations?.openWorldHint === true) words.push('It reaches outside services.');
  return words;
}

/** The operation, in words. */
const OPERATIONS: Partial<Record<string, string>> = {
  'tools/call': 'run the tool',
  'resources/read': 'read the resource',
  'prompts/get': 'get the prompt',
};

/**
 * The approval page of one held tool call: which application, which tool (its annotations),
 * the exact arguments, Approve (the person's passkey signs exactly this call) or Decline.
 * It reuses the consent page's script (`#consent` form, `#allow` button): the same ceremony
 * over another challenge. Every dynamic value is escaped through `html`.
 */
export function approvalPage(v: ApprovalPageView): string {
  if (!v.signedIn)
    return layout(
      'Approve a tool call',
      html`<h1>An application asks you to approve a tool call</h1>
<p>Sign in with your passkey to see what it wants to do, then approve or decline it.</p>
<div class="actions"><a class="button primary" href="${v.signInUrl}">Continue with a passkey</a></div>`,
    );
  const warnings = hints(v.tool.annotations);
  const title = claim(v.tool.title, MAX_TITLE);
  const description = claim(v.tool.description, MAX_DESCRIPTION);
  const said = title || description || warnings.length > 0;
  return layout(
    `Approve ${v.name} for ${v.applicationName}`,
    html`<h1>${v.applicationName} wants to ${OPERATIONS[v.method] ?? v.method} <code id="name">${v.name}</code></h1>
<p class="note">MCP operation <code id="method">${v.method}</code></p>
${v.error ? html`<p role="alert"><strong>${v.error}</strong></p>` : ''}
${
  said
    ? html`<section><p class="note">What the server says about it (its own claims, not checked):</p>
${title ? html`<p><strong>${title}</strong></p>` : ''}
${description ? html`<p>${description}</p>` : ''}
${warnings.length > 0 ? html`<ul class="warnings">${warnings.map((w) => html`<li><strong>${w}</strong></li>`)}</ul>` : ''}</section>`
    : ''
}
<p>With exactly these arguments:</p>
<pre id="arguments">${v.arguments}</pre>
<p class="note">Approving lets this one call run once, with these arguments only. Characters that would not show are written as <code>\\uXXXX</code>. The request expires at ${v.expiresAt.toISOString()}.</p>
<form method="post" action="${v.action}" id="consent" data-challenge="${v.challenge ?? ''}" data-credentials="${(v.credentialIds ?? []).join(' ')}">
<input type="hidden" name="csrf" value="${v.csrf}">
<input type="hidden" id="assertion" name="assertion" value="">
<div class="actions"><button class="primary" id="allow" type="submit" name="decision" value="allow">Approve</button><button type="submit" name="decision" value="deny">Decline</button></div>
<p class="note" id="consent-status" role="status" aria-live="polite">Approve asks your passkey to sign this exact call.</p>
<noscript><p class="note"><strong>Approving needs JavaScript: your passkey signs the call in this page.</strong></p></noscript>
</form>
<script src="/v1/auth/assets/webauthn.js"></script><script src="/v1/connect/assets/consent.js"></script>`,
  );
}

/** After the answer: what happens next, in the agent. */
export function approvalDonePage(approved: boolean, method: string, name: string): string {
  return approved
    ? layout(
        'Approved',
        html`<h1>Approved</h1><p role="status">You approved <code>${method}</code> of <code>${name}</code> once, with the arguments you saw. The application can now retry the call.</p><p class="note">You can close this window.</p>`,
      )
    : layout(
        'Declined',
        html`<h1>Declined</h1><p role="status"><code>${method}</code> of <code>${name}</code> will not run: the application's retry fails with <code>approval_declined</code>.</p><p class="note">You can close this window.</p>`,
      );
}
