import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

import type { RunningService } from '@context-gateway/service-kit';
import { ServiceHarness } from '@context-gateway/service-kit/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { AppModule } from '../app.module.js';
import { loadEnv } from '../env.js';
import { configureGateway } from '../http/configure.js';

// The gateway's OAuth edge, booted as main.ts boots it. identity's authorization server is
// played by a plain HTTP server that records what reaches it (a service's test cannot
// boot another service; the whole chain runs in test-e2e/identity/oauth.e2e-spec.ts).

const PUBLIC_URL = 'https://gateway.example';
let harness: ServiceHarness;
let gateway: RunningService;
let upstream: Server;
let seen: { method: string; url: string; headers: IncomingHttpHeaders; body: string }[] = [];

beforeAll(async () => {
  upstream = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      });
      if (req.url === '/oauth/slow') return; // never answers: the proxy's timeout answers instead
      res.writeHead(201, {
        'content-type': 'application/json',
        'set-cookie': ['a=1; Path=/oauth', 'b=2; Path=/oauth'],
        connection: 'close',
      });
      res.end(JSON.stringify({ ok: true }));
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const port = (upstream.address() as AddressInfo).port;
  harness = await ServiceHarness.start({
    schemaPrefix: 'gateway_oauth',
    migrationsDir: fileURLToPath(new URL('../../prisma/migrations', import.meta.url)),
  });
  gateway = await harness.run({
    name: 'gateway',
    module: AppModule,
    loadEnv,
    env: {
      GATEWAY_PUBLIC_URL: PUBLIC_URL,
      IDENTITY_HTTP_URL: `http://127.0.0.1:${port}`,
      OAUTH_PROXY_TIMEOUT_MS: '500',
    },
    configure: configureGateway,
  });
}, 60_000);

afterAll(async () => {
  await harness?.stop();
  upstream?.closeAllConnections();
  await new Promise((resolve) => upstream?.close(resolve));
});

describe('the authorization server behind the gateway', () => {
  it('forwards /oauth/* with its body and headers, the public scheme and host, and no client X-Forwarded-*', async () => {
    seen = [];
    const res = await fetch(new URL('/oauth/token?x=1', gateway.url), {
      method: 'POST',
      body: 'grant_type=client_credentials',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: 'Basic abc',
        cookie: 'cg_session=s',
        'x-forwarded-host': 'evil.example',
        'x-forwarded-proto': 'http',
      },
    });
    expect(res.status).toBe(201);
    expect(res.headers.getSetCookie()).toEqual(['a=1; Path=/oauth', 'b=2; Path=/oauth']);
    expect(await res.json()).toEqual({ ok: true });
    expect(seen).toHaveLength(1);
    const [request] = seen;
    expect(request).toMatchObject({ method: 'POST', url: '/oauth/token?x=1', body: 'grant_type=client_credentials' });
    expect(request?.headers).toMatchObject({
      'content-type': 'application/x-www-form-urlencoded',
      authorization: 'Basic abc',
      cookie: 'cg_session=s',
      'x-forwarded-host': 'gateway.example',
      'x-forwarded-proto': 'https',
    });
  });

  it.each([
    '/.well-known/oauth-authorization-server/oauth',
    '/.well-known/openid-configuration/oauth',
    '/oauth/.well-known/openid-configuration',
  ])('serves discovery at %s from the provider', async (path) => {
    seen = [];
    expect((await fetch(new URL(path, gateway.url))).status).toBe(201);
    expect(seen[0]?.url).toBe('/oauth/.well-known/openid-configuration');
  });

  it('forwards nothing else', async () => {
    seen = [];
    await fetch(new URL('/oauthx', gateway.url));
    await fetch(new URL('/.well-known/oauth-authorization-server', gateway.url));
    expect(seen).toEqual([]);
  });

  it('answers 502 with a code when the authorization server does not answer in time', async () => {
    const res = await fetch(new URL('/oauth/slow', gateway.url));
    expect(res.status).toBe(502);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(await res.json()).toMatchObject({ status: 502, code: 'authorization_server_unavailable' });
  });
});

describe('the gateway as a protected resource', () => {
  it('publishes RFC 9728 metadata naming the authorization server', async () => {
    const res = await fetch(new URL('/.well-known/oauth-protected-resource', gateway.url));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      resource: PUBLIC_URL,
      authorization_servers: [`${PUBLIC_URL}/oauth`],
      bearer_methods_supported: ['header'],
      resource_name: 'Context Gateway',
    });
  });

  it('names that metadata in the WWW-Authenticate of a 401', async () => {
    const res = await fetch(new URL('/v1/applications/00000000-0000-4000-8000-000000000000', gateway.url));
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(
      `Bearer resource_metadata="${PUBLIC_URL}/.well-known/oauth-protected-resource"`,
    );
  });
});
