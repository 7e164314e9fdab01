import { type IncomingHttpHeaders, type IncomingMessage, request as httpRequest, type ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';

import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';

import type { OAuthUrls } from './oauth-urls.js';

/** Headers that describe one connection, not the message (RFC 9110 §7.6.1): never forwarded. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

export interface OAuthProxyOptions {
  urls: OAuthUrls;
  /** identity's own HTTP address (IDENTITY_HTTP_URL), reachable from the gateway only. */
  identityUrl: string;
  timeoutMs: number;
  logger: Logger;
}

/**
 * Where a public path goes in identity, or undefined when it is not the authorization
 * server's: everything under the issuer path, and the RFC 8414 / OpenID Connect
 * discovery documents at their path-inserted well-known URLs (an issuer with a path
 * publishes `/.well-known/oauth-authorization-server/oauth`).
 */
export function identityPathFor(url: string, urls: Pick<OAuthUrls, 'issuerPath'>): string | undefined {
  const { issuerPath } = urls;
  const [path = '', query] = splitQuery(url);
  if (path === issuerPath || path.startsWith(`${issuerPath}/`)) return url;
  if (
    path === `/.well-known/oauth-authorization-server${issuerPath}` ||
    path === `/.well-known/openid-configuration${issuerPath}`
  ) {
    return `${issuerPath}/.well-known/openid-configuration${query === undefined ? '' : `?${query}`}`;
  }
  return undefined;
}

function splitQuery(url: string): [string, string | undefined] {
  const i = url.indexOf('?');
  return i < 0 ? [url, undefined] : [url.slice(0, i), url.slice(i + 1)];
}

/**
 * The authorization server runs in identity (oidc-provider) but its issuer is on the
 * gateway's origin, so the gateway forwards those paths to identity's HTTP port as they
 * are: bodies streamed both ways, headers kept except hop-by-hop ones, the public scheme
 * and host passed as X-Forwarded-Proto/Host (identity's provider trusts them; its port
 * must therefore be reachable from the gateway only). Client-sent X-Forwarded-* are
 * replaced, never passed on. Taken before Fastify parses the body (onRequest).
 */
export function installOAuthProxy(fastify: FastifyInstance, options: OAuthProxyOptions): void {
  const target = new URL(options.identityUrl);
  const publicUrl = new URL(options.urls.resource);
  fastify.addHook('onRequest', (request, reply, done) => {
    const path = identityPathFor(request.raw.url ?? '/', options.urls);
    if (path === undefined) {
      done();
      return;
    }
    reply.hijack();
    forward(request.raw, reply.raw, path, request.ip).catch((error: unknown) => {
      options.logger.warn({ err: (error as Error).message }, 'authorization server unreachable');
      if (!reply.raw.headersSent) {
        reply.raw.writeHead(502, { 'content-type': 'application/problem+json', 'cache-control': 'no-store' });
        reply.raw.end(
          JSON.stringify({
            type: 'about:blank',
            title: 'Bad Gateway',
            status: 502,
            code: 'authorization_server_unavailable',
            detail: 'The authorization server did not answer; try again shortly',
          }),
        );
      } else reply.raw.destroy();
    });
  });

  async function forward(req: IncomingMessage, res: ServerResponse, path: string, clientIp: string): Promise<void> {
    const headers = forwardHeaders(req.headers);
    headers['x-forwarded-proto'] = publicUrl.protocol.slice(0, -1);
    headers['x-forwarded-host'] = publicUrl.host;
    headers['x-forwarded-for'] = clientIp;
    headers['host'] = target.host;
    const upstream = httpRequest({
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port,
      method: req.method,
      path,
      headers,
      timeout: options.timeoutMs,
    });
    upstream.on('timeout', () => upstream.destroy(new Error(`no answer within ${options.timeoutMs} ms`)));
    const answered = new Promise<IncomingMessage>((resolve, reject) => {
      upstream.once('response', resolve);
      upstream.once('error', reject);
    });
    await pipeline(req, upstream);
    const response = await answered;
    res.writeHead(response.statusCode ?? 502, forwardHeaders(response.headers));
    await pipeline(response, res);
  }
}

function forwardHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const named = new Set(
    String(headers['connection'] ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase()),
  );
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name) || name.startsWith('x-forwarded-')) continue;
    out[name] = value;
  }
  return out;
}
