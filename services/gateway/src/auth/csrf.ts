import { randomBytes, timingSafeEqual } from 'node:crypto';

import { AppError } from '@context-gateway/errors';
import type { FastifyReply, FastifyRequest } from 'fastify';

import { COOKIES, parseCookies, serializeCookie } from './cookies.js';

/** Our tokens: 32 random bytes, base64url. Anything else in the cookie was not set by us. */
const TOKEN = /^[A-Za-z0-9_-]{43}$/;
/** An hour: a form left open longer is sent again from a fresh page. */
const MAX_AGE_SECONDS = 3600;

/**
 * The double-submit token of the gateway's HTML forms (consent page, portal): the browser's
 * own `__Host-` cookie, echoed in the form. Returns the cookie's token (a new one when the
 * browser has none of ours), and sets the cookie on `reply` with a fresh hour. SameSite=Strict, so another site's page never
 * sends it; edge-guards' Sec-Fetch-Site and Origin checks stand in front of this.
 */
export function issueCsrfToken(request: FastifyRequest, reply: FastifyReply): string {
  const current = parseCookies(request.headers.cookie).get(COOKIES.csrf);
  const token = current && TOKEN.test(current) ? current : randomBytes(32).toString('base64url');
  // Set again even when kept: a form is good for the hour after the page that carries it.
  reply.header('set-cookie', serializeCookie(COOKIES.csrf, token, { maxAge: MAX_AGE_SECONDS, sameSite: 'Strict' }));
  return token;
}

/** A form post's token must equal the cookie's (compared in constant time); `csrf_invalid` (403) otherwise. */
export function assertCsrfToken(request: FastifyRequest, sent: string): void {
  const cookie = Buffer.from(parseCookies(request.headers.cookie).get(COOKIES.csrf) ?? '');
  const form = Buffer.from(sent);
  if (cookie.length === 0 || cookie.length !== form.length || !timingSafeEqual(cookie, form))
    throw new AppError('csrf_invalid');
}
