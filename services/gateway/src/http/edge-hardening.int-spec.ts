import { connect as connectSocket } from 'node:net';
import { fileURLToPath } from 'node:url';

import type { RunningService } from '@context-gateway/service-kit';
import { ServiceHarness } from '@context-gateway/service-kit/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { AppModule } from '../app.module.js';
import { loadEnv } from '../env.js';
import { configureGateway } from './configure.js';

// The gateway booted as main.ts boots it, with short HTTP deadlines, met over real sockets
// by what a hostile page or client sends: duplicated cookies, cross-site writes carrying
// the session cookie, forms sent to JSON routes, bodies that never arrive, and an
// anonymous look at /v1/health. No other service runs: nothing here may need one.

const ORIGIN = 'https://gateway.example';
const OPERATOR_TOKEN = 'o'.repeat(40);
const REQUEST_TIMEOUT_MS = 2_000;
const HEADERS_TIMEOUT_MS = 1_000;
const SESSION = `__Host-cg_session=cg_ss_${'s'.repeat(43)}`;
const VERIFY = '/v1/auth/passkeys/authentication/verify';

let harness: ServiceHarness;
let gateway: RunningService;

beforeAll(async () => {
  harness = await ServiceHarness.start({
    schemaPrefix: 'gateway_hardening',
    migrationsDir: fileURLToPath(new URL('../../prisma/migrations', import.meta.url)),
  });
  gateway = await harness.run({
    name: 'gateway',
    module: AppModule,
    loadEnv,
    env: {
      OPERATOR_TOKEN,
      GATEWAY_PUBLIC_URL: ORIGIN,
      HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
    },
    configure: configureGateway,
  });
}, 60_000);

afterAll(async () => {
  await harness?.stop();
});

async function send(method: string, path: string, headers: Record<string, string>, body?: string) {
  const res = await fetch(new URL(path, gateway.url), { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await res.text();
  const code = res.headers.get('content-type')?.includes('json') ? (JSON.parse(text) as { code?: string }).code : '';
  return { status: res.status, code, text };
}

const json = { 'content-type': 'application/json' };

describe('cookies', () => {
  it('a request with one cookie name twice is refused, on any route', async () => {
    expect(await send('GET', '/v1/auth/session', { cookie: `${SESSION}; ${SESSION}x` })).toMatchObject({
      status: 400,
      code: 'malformed_request',
    });
    expect(await send('GET', '/v1/openapi.json', { cookie: 'a=1; b=2; a=3' })).toMatchObject({
      status: 400,
      code: 'malformed_request',
    });
  });

  it('a cookie without the __Host- prefix is not a session', async () => {
    expect(await send('GET', '/v1/auth/session', { cookie: `cg_session=cg_ss_${'s'.repeat(43)}` })).toMatchObject({
      status: 401,
      code: 'unauthenticated',
    });
  });
});

describe('cookie-authenticated writes', () => {
  it.each([
    ['a cross-site page', { 'sec-fetch-site': 'cross-site' }],
    ['a sibling subdomain', { 'sec-fetch-site': 'same-site', origin: 'https://blog.gateway.example' }],
    ['another origin', { origin: 'https://evil.example' }],
    ['an opaque origin', { origin: 'null' }],
  ])('from %s are 403 csrf_invalid', async (_name, headers: Record<string, string>) => {
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      expect(await send(method, VERIFY, { ...json, ...headers, cookie: SESSION }, '{}')).toMatchObject({
        status: 403,
        code: 'csrf_invalid',
      });
    }
    expect(await send('DELETE', '/v1/auth/session', { ...headers, cookie: SESSION })).toMatchObject({
      status: 403,
      code: 'csrf_invalid',
    });
  });

  it("from the gateway's own pages, from a non-browser client, or without our cookie reach the route", async () => {
    const body = JSON.stringify({ response: {} });
    // The route refuses (no ceremony cookie), but it was the route that answered.
    const reached = { status: 400, code: 'webauthn_challenge_invalid' };
    const own = { origin: ORIGIN, 'sec-fetch-site': 'same-origin' };
    expect(await send('POST', VERIFY, { ...json, ...own, cookie: SESSION }, body)).toMatchObject(reached);
    // A page of ours with Referrer-Policy no-referrer: the browser sends Origin null.
    const noReferrer = { origin: 'null', 'sec-fetch-site': 'same-origin' };
    expect(await send('POST', VERIFY, { ...json, ...noReferrer, cookie: SESSION }, body)).toMatchObject(reached);
    expect(await send('POST', VERIFY, { ...json, cookie: SESSION }, body)).toMatchObject(reached);
    expect(
      await send('POST', VERIFY, { ...json, origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }, body),
    ).toMatchObject(reached);
    // Reads are not writes: a cross-site GET with the cookie is left to SameSite and the route.
    expect(await send('GET', '/v1/openapi.json', { origin: 'https://evil.example', cookie: SESSION })).toMatchObject({
      status: 200,
    });
  });
});

describe('forms', () => {
  it('are parsed on the consent form route only; a JSON route refuses them with 415', async () => {
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    expect(await send('POST', VERIFY, form, 'response=x')).toMatchObject({
      status: 415,
      code: 'unsupported_media_type',
    });
    expect(
      await send('POST', '/v1/admin/organizations', { ...form, authorization: `Bearer ${OPERATOR_TOKEN}` }, 'name=x'),
    ).toMatchObject({
      status: 415,
      code: 'unsupported_media_type',
    });
    // The consent route parses it (and refuses it for its missing CSRF cookie, as a page).
    const consent = await send('POST', `/v1/connect/${'t'.repeat(43)}`, form, 'csrf=x&decision=deny');
    expect(consent.status).toBe(403);
    expect(consent.text).toContain('<html');
  });
});

/** Writes `request` on a raw socket and waits: the status line answered (if any) and when the socket closed. */
function rawUntilClosed(request: string): Promise<{ status: number; closedAfterMs: number }> {
  const { port } = new URL(gateway.url);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connectSocket(Number(port), '127.0.0.1', () => socket.write(request));
    let data = '';
    socket.on('data', (chunk: Buffer) => (data += chunk.toString('utf8')));
    socket.on('error', reject);
    socket.on('close', () => resolve({ status: Number(data.split(' ')[1]), closedAfterMs: Date.now() - started }));
  });
}

describe('server deadlines', () => {
  it('a body shorter than its Content-Length gets 408 and a closed connection within HTTP_REQUEST_TIMEOUT_MS', async () => {
    const answer = await rawUntilClosed(
      `POST ${VERIFY} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"response":`,
    );
    expect(answer.status).toBe(408);
    // Node checks deadlines about once a second (bootstrap.ts): the request timeout plus that.
    expect(answer.closedAfterMs).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
    expect(answer.closedAfterMs).toBeLessThan(REQUEST_TIMEOUT_MS + 1_500);
  });

  it('headers that never end get 408 within HTTP_HEADERS_TIMEOUT_MS', async () => {
    const answer = await rawUntilClosed(`GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n`);
    expect(answer.status).toBe(408);
    expect(answer.closedAfterMs).toBeLessThan(HEADERS_TIMEOUT_MS + 1_500);
  });
});

describe('/v1/health', () => {
  it('tells an anonymous caller ready or not, and nothing else', async () => {
    // Only the gateway runs: the platform is degraded, and the reasons are internal.
    const anonymous = await fetch(new URL('/v1/health', gateway.url));
    expect(anonymous.status).toBe(503);
    expect(await anonymous.json()).toEqual({ status: 'degraded' });
    const wrongToken = await fetch(new URL('/v1/health', gateway.url), {
      headers: { authorization: `Bearer ${'x'.repeat(40)}` },
    });
    expect(await wrongToken.json()).toEqual({ status: 'degraded' });
  });

  it("gives the operator each service's checks and errors", async () => {
    const res = await fetch(new URL('/v1/health', gateway.url), {
      headers: { authorization: `Bearer ${OPERATOR_TOKEN}` },
    });
    expect(res.status).toBe(503);
    const body = (await res.json()) as {
      status: string;
      services: Record<string, { ready: boolean; error?: unknown }>;
    };
    expect(body.status).toBe('degraded');
    expect(body.services['gateway']?.ready).toBe(true);
    expect(body.services['identity']).toMatchObject({ ready: false, error: expect.anything() });
  });
});
