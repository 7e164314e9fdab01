import { layout } from '../connect/connect-pages.js';
import { html } from '../http/html.js';

export interface ApprovalPageView {
  applicationName: string;
  /** The tool as the agent names it (`github.delete_repo`). */
  toolName: string;
  tool: { title?: string; description?: string; annotations?: Record<string, unknown> };
  /** The arguments, pretty-printed JSON. */
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

/** What the annotations say, in words (a server's hints: shown, never trusted for a decision). */
function hints(annotations: Record<string, unknown> | undefined) {
  const words: string[] = [];
  if (annotations?.destructiveHint === true) words.push('Destructive: it may delete or overwrite data.');
  if (annotations?.readOnlyHint === true) words.push('Read-only, by its description.');
  if (annotations?.openWorldHint === true) words.push('It reaches outside services.');
  return words;
}

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
  return layout(
    `Approve ${v.toolName} for ${v.applicationName}`,
    html`<h1>${v.applicationName} wants to run <code>${v.toolName}</code></h1>
${v.error ? html`<p role="alert"><strong>${v.error}</strong></p>` : ''}
${v.tool.title ? html`<p><strong>${v.tool.title}</strong></p>` : ''}
${v.tool.description ? html`<p>${v.tool.description}</p>` : ''}
${warnings.length > 0 ? html`<ul class="warnings">${warnings.map((w) => html`<li><strong>${w}</strong></li>`)}</ul>` : ''}
<p>With exactly these arguments:</p>
<pre id="arguments">${v.arguments}</pre>
<p class="note">Approving lets this one call run once, with these arguments only. The request expires at ${v.expiresAt.toISOString()}.</p>
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
export function approvalDonePage(approved: boolean, toolName: string): string {
  return approved
    ? layout(
        'Approved',
        html`<h1>Approved</h1><p role="status">You approved <code>${toolName}</code> once, with the arguments you saw. The application can now retry the call.</p><p class="note">You can close this window.</p>`,
      )
    : layout(
        'Declined',
        html`<h1>Declined</h1><p role="status"><code>${toolName}</code> will not run: the application's retry fails with <code>approval_declined</code>.</p><p class="note">You can close this window.</p>`,
      );
}
