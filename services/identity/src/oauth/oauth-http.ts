import type { IncomingMessage, ServerResponse } from 'node:http';

import type { Logger } from 'pino';

import type { OAuthInteractions } from './oauth-interactions.js';

/** One built provider: its request handler and its interactions (rebuilt together when the keys change). */
export interface ServingProvider {
  callback: (req: IncomingMessage, res: ServerResponse) => unknown;
  interactions: OAuthInteractions;
}

/** The part of Fastify this needs (identity does not depend on fastify directly). */
export interface OnRequestHost {
  addHook(
    name: 'onRequest',
    hook: (
      request: { raw: IncomingMessage },
      reply: { raw: ServerResponse; hijack(): void },
      done: (error?: Error) => void,
    ) => void,
  ): unknown;
}

/**
 * Serves the authorization server on identity's HTTP port, under the issuer's path
 * (`/oauth`). The requests are taken before Fastify parses anything (onRequest) and
 * handed as they are to oidc-provider, a Koa app that reads its own bodies; the
 * gateway's reverse proxy forwards `/oauth/*` here (docs/identity.md).
 */
export function installOAuthRoutes(
  fastify: OnRequestHost,
  options: { issuerPath: string; current: () => ServingProvider; logger: Logger },
): void {
  const { issuerPath, current, logger } = options;
  const interactionPrefix = `${issuerPath}/interaction/`;

  fastify.addHook('onRequest', (request, reply, done) => {
    const url = request.raw.url ?? '/';
    if (url !== issuerPath && !url.startsWith(`${issuerPath}/`) && !url.startsWith(`${issuerPath}?`)) {
      done();
      return;
    }
    // Fastify no longer touches this request: the handlers below write the response.
    reply.hijack();
    const req = request.raw;
    const res = reply.raw;
    // The provider serving now: a key reload may have swapped it since the last request.
    const serving = current();
    const work = url.startsWith(interactionPrefix)
      ? serving.interactions.handle(req, res)
      : runProvider(serving.callback, req, res, url.slice(issuerPath.length) || '/');
    work.catch((error: unknown) => {
      logger.error({ err: error }, 'oauth request failed');
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(JSON.stringify({ error: 'server_error', error_description: 'internal error' }));
      } else res.destroy();
    });
  });
}

/**
 * oidc-provider routes relative to its mount point; `originalUrl` tells it the mount
 * (`/oauth`) so the URLs it builds (discovery, redirects) carry it.
 */
async function runProvider(
  callback: (req: IncomingMessage, res: ServerResponse) => unknown,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
): Promise<void> {
  const original = req.url;
  Object.assign(req, { originalUrl: original, url: path.startsWith('?') ? `/${path}` : path });
  // Koa answers its own errors (oidc-provider renders them); the promise settles when the response is written.
  await callback(req, res);
}
