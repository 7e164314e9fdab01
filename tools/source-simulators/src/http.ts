import type { FastifyInstance, FastifyRequest } from 'fastify';

/** application/x-www-form-urlencoded bodies (token endpoints, HTML forms) as a plain object. */
export function acceptFormBodies(app: FastifyInstance): void {
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
}

/** One string parameter; undefined when absent, null when repeated (an invalid request). */
export function param(source: unknown, name: string): string | undefined | null {
  if (!source || typeof source !== 'object') return undefined;
  const v = (source as Record<string, unknown>)[name];
  if (v === undefined) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return null;
}

export function str(source: unknown, name: string): string | undefined {
  return param(source, name) ?? undefined;
}

/** Credentials from `Authorization: Basic` (RFC 6749 §2.3.1: each part form-urlencoded). */
export function basicCredentials(req: FastifyRequest): { id: string; secret: string } | undefined {
  const header = req.headers.authorization;
  if (!header || !/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return undefined;
  const unform = (s: string) => {
    try {
      return decodeURIComponent(s.replace(/\+/g, ' '));
    } catch {
      return s;
    }
  };
  return { id: unform(decoded.slice(0, i)), secret: unform(decoded.slice(i + 1)) };
}

/** Client credentials from Basic or the form body, as the token endpoints accept them. */
export function clientCredentials(req: FastifyRequest): { id: string | undefined; secret: string | undefined } {
  const basic = basicCredentials(req);
  if (basic) return { id: basic.id, secret: basic.secret };
  return { id: str(req.body, 'client_id'), secret: str(req.body, 'client_secret') };
}

export function bearerToken(req: FastifyRequest, alsoTokenScheme = false): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const m = /^(bearer|token) +(\S+)$/i.exec(header.trim());
  if (!m) return undefined;
  if (m[1]?.toLowerCase() === 'token' && !alsoTokenScheme) return undefined;
  return m[2];
}

export function cookie(req: FastifyRequest, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

/** Bounded integer query parameter; NaN when present but not an integer. */
export function intParam(query: unknown, name: string, fallback: number): number {
  const v = str(query, name);
  if (v === undefined || v === '') return fallback;
  return /^-?\d+$/.test(v) ? Number(v) : Number.NaN;
}
