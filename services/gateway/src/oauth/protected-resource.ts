import type { FastifyInstance } from 'fastify';

import type { OAuthUrls } from './oauth-urls.js';

/** RFC 9728 Protected Resource Metadata: how a client learns which authorization server issues tokens for the gateway. */
function protectedResourceMetadata(urls: OAuthUrls) {
  return {
    resource: urls.resource,
    authorization_servers: [urls.issuer],
    bearer_methods_supported: ['header'],
    resource_name: 'Context Gateway',
  };
}

/** Serves the metadata at its well-known URL (GET only, public, cacheable for a minute). */
export function installProtectedResourceMetadata(fastify: FastifyInstance, urls: OAuthUrls): void {
  const path = new URL(urls.resourceMetadata).pathname;
  const body = JSON.stringify(protectedResourceMetadata(urls));
  fastify.addHook('onRequest', (request, reply, done) => {
    const url = request.raw.url ?? '/';
    if (url !== path && !url.startsWith(`${path}?`)) {
      done();
      return;
    }
    reply.hijack();
    const res = reply.raw;
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' });
      res.end();
      return;
    }
    res.writeHead(200, {
      'content-type': 'application/json',
      'cache-control': 'public, max-age=60',
      'access-control-allow-origin': '*',
    });
    res.end(request.method === 'HEAD' ? undefined : body);
  });
}
