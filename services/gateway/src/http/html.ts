import type { FastifyReply } from 'fastify';

/**
 * HTML for the gateway's server-rendered pages (consent, portal, errors): every dynamic value
 * goes through `html` (a tagged template), so nothing an app, a source or a person sends can
 * become markup.
 */
const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

function escapeHtml(value: string): string {
  // The pattern matches exactly the keys of ESCAPES; were they ever to drift apart, a
  // character with no escape is dropped rather than let through raw.
  return value.replace(/[&<>"'`]/g, (c) => ESCAPES[c] ?? '');
}

/** Already-escaped markup. Only `html` makes one. */
export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

type Part = string | number | SafeHtml | readonly SafeHtml[] | undefined | null | false;

/** Tagged template: interpolated strings are escaped, SafeHtml (and arrays of it) is kept. */
export function html(strings: TemplateStringsArray, ...values: Part[]): SafeHtml {
  let out = strings[0] ?? '';
  values.forEach((value, i) => {
    if (value instanceof SafeHtml) out += value.value;
    else if (Array.isArray(value)) out += value.map((v: SafeHtml) => v.value).join('');
    else if (value !== undefined && value !== null && value !== false) out += escapeHtml(String(value));
    out += strings[i + 1] ?? '';
  });
  return new SafeHtml(out);
}

/** The headers of every HTML page: never cached, never framed, no referrer, its own CSP. */
export function htmlPageHeaders(reply: FastifyReply, csp: string): FastifyReply {
  return reply
    .type('text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY')
    .header('x-content-type-options', 'nosniff')
    .header('content-security-policy', csp);
}
