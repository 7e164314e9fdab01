import { AppError } from '@context-gateway/errors';

/**
 * The gateway's cookies. All are `__Host-` cookies: the browser accepts them only with
 * Secure, Path=/ and no Domain, so neither a sibling subdomain nor a plain-http page can
 * set or shadow them (cookie tossing). Browsers treat http://localhost as secure, so the
 * local stack works without TLS; any other plain-http GATEWAY_PUBLIC_URL gets no cookies.
 */
export const COOKIES = {
  /** The signed-in browser (passkey session). */
  session: '__Host-cg_session',
  /** A passkey ceremony in progress in this browser. */
  ceremony: '__Host-cg_ceremony',
  /** The consent form's double-submit token. */
  csrf: '__Host-cg_csrf',
  /** The OAuth state of a connect flow, bound to the browser that left for the source. */
  connectState: '__Host-cg_connect_state',
  /** An organization SSO sign-in in progress, bound to the browser that left for the IdP. */
  sso: '__Host-cg_sso',
} as const;

/** The prefix every cookie of ours carries: a request with one is cookie-authenticated. */
export const OUR_COOKIE_PREFIX = '__Host-cg_';

/**
 * Parses a Cookie header; a malformed pair is skipped. A name sent twice is refused
 * (400 malformed_request): with one value per name, no injected or shadowing cookie can
 * decide which value a handler reads.
 */
export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  if (!header) return cookies;
  const seen = new Set<string>();
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    if (seen.has(name)) throw new AppError('malformed_request', 'A cookie name appears more than once');
    seen.add(name);
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    try {
      cookies.set(name, decodeURIComponent(value));
    } catch {
      // not percent-decodable: not one of ours
    }
  }
  return cookies;
}

export interface CookieOptions {
  /** Seconds; 0 deletes the cookie. */
  maxAge: number;
  sameSite: 'Lax' | 'Strict';
}

/** A Set-Cookie value for one of our `__Host-` cookies: HttpOnly (no script of ours reads a credential), Secure, Path=/. */
export function serializeCookie(name: (typeof COOKIES)[keyof typeof COOKIES], value: string, o: CookieOptions): string {
  return [
    `${name}=${encodeURIComponent(value)}`,
    'Path=/',
    `Max-Age=${Math.max(0, Math.floor(o.maxAge))}`,
    'HttpOnly',
    `SameSite=${o.sameSite}`,
    'Secure',
  ].join('; ');
}
