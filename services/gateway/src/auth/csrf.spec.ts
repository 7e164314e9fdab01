import { AppError } from '@context-gateway/errors';
import type { FastifyReply, FastifyRequest } from 'fastify';

import { assertCsrfToken, issueCsrfToken } from './csrf.js';

const requestWith = (cookie?: string) => ({ headers: cookie ? { cookie } : {} }) as unknown as FastifyRequest;

function recordingReply() {
  const headers: Record<string, string> = {};
  const reply = {
    header(name: string, value: string) {
      headers[name] = value;
      return reply;
    },
  };
  return { reply: reply as unknown as FastifyReply, headers };
}

function codeOf(run: () => void): string | undefined {
  try {
    run();
  } catch (error) {
    return error instanceof AppError ? error.code : 'not an AppError';
  }
  return undefined;
}

describe('the forms’ CSRF token', () => {
  const token = 'a'.repeat(43);

  it('keeps the browser’s own token, setting it again for another hour', () => {
    const { reply, headers } = recordingReply();
    expect(issueCsrfToken(requestWith(`__Host-cg_csrf=${token}`), reply)).toBe(token);
    expect(headers['set-cookie']).toContain(`__Host-cg_csrf=${token}`);
    expect(headers['set-cookie']).toContain('Max-Age=3600');
  });

  it.each([
    ['no cookie', undefined],
    ['a cookie that is not one of ours', '__Host-cg_csrf=short'],
  ])('sets a fresh Strict __Host- cookie for %s', (_, cookie) => {
    const { reply, headers } = recordingReply();
    const issued = issueCsrfToken(requestWith(cookie), reply);
    expect(issued).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(headers['set-cookie']).toContain(`__Host-cg_csrf=${issued}`);
    expect(headers['set-cookie']).toContain('SameSite=Strict');
  });

  it('accepts the form only with the cookie’s exact token', () => {
    expect(codeOf(() => assertCsrfToken(requestWith(`__Host-cg_csrf=${token}`), token))).toBeUndefined();
    expect(codeOf(() => assertCsrfToken(requestWith(`__Host-cg_csrf=${token}`), 'b'.repeat(43)))).toBe('csrf_invalid');
    expect(codeOf(() => assertCsrfToken(requestWith(`__Host-cg_csrf=${token}`), token.slice(1)))).toBe('csrf_invalid');
    expect(codeOf(() => assertCsrfToken(requestWith(), ''))).toBe('csrf_invalid');
  });
});
