import { describe, expect, it } from '@jest/globals';

import { ContextGateway } from './client.js';
import { GatewayError, GatewayNetworkError, GrantRevokedError, UnavailableError, ValidationError } from './errors.js';

const CONNECTION = '6f1c2b7e-3a4d-4e5f-8a9b-0c1d2e3f4a5b';

interface Call {
  url: URL;
  init: RequestInit;
}

/** A fetch that answers from a script, one response per call, and records what it was asked. */
function scripted(...answers: (Response | Error)[]) {
  const calls: Call[] = [];
  const fetch = (input: string | URL, init?: RequestInit) => {
    calls.push({ url: new URL(input), init: init ?? {} });
    const next = answers.shift();
    if (!next) throw new Error('no scripted answer left');
    return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
  };
  return { fetch, calls };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });

const problem = (status: number, code: string, headers: Record<string, string> = {}) =>
  new Response(
    JSON.stringify({
      type: `https://errors.context-gateway.dev/${code}`,
      title: code,
      status,
      detail: `the ${code} detail`,
      instance: '/v1/x',
      code,
      requestId: 'req-123',
    }),
    { status, headers: { 'content-type': 'application/problem+json', ...headers } },
  );

const status = { state: 'idle', lastSuccessAt: null, lastError: null, recordsSynced: 0, nextRunAt: null };

function gateway(fetch: ReturnType<typeof scripted>['fetch'], extra: { maxRetries?: number } = {}) {
  const waits: number[] = [];
  const client = new ContextGateway({
    baseUrl: 'https://gw.example/',
    apiKey: 'cg_sk_test',
    fetch,
    sleep: (ms) => {
      waits.push(ms);
      return Promise.resolve();
    },
    random: () => 0.5,
    now: () => Date.parse('2026-12-04T12:00:00Z'),
    ...extra,
  });
  return { client, waits };
}

describe('errors', () => {
  it('turns a problem document into the typed error for its code, keeping detail and request id', async () => {
    const { fetch } = scripted(problem(403, 'grant_revoked'));
    const { client } = gateway(fetch);
    const error = await client.records.list(CONNECTION).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GrantRevokedError);
    expect(error).toBeInstanceOf(GatewayError);
    expect(error).toMatchObject({ code: 'grant_revoked', status: 403, detail: 'the grant_revoked detail' });
    expect((error as GatewayError).requestId).toBe('req-123');
  });

  it('lists field problems of a refused input', async () => {
    const body = { code: 'unknown_field', status: 422, detail: 'no', errors: [{ path: 'colour', message: 'unknown' }] };
    const { fetch } = scripted(json(422, body));
    const { client } = gateway(fetch);
    const error = (await client.connect
      .createSession({ integration: 'github', scopes: ['github:read:repos'], callbackUrl: 'https://a.example/cb' })
      .catch((e: unknown) => e)) as ValidationError;
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.errors).toEqual([{ path: 'colour', message: 'unknown' }]);
  });

  it('gives an answer that is not a problem document (a proxy page, a newer code) a code by its status', async () => {
    const { fetch } = scripted(
      new Response('<html>bad gateway</html>', { status: 502 }),
      json(404, { code: 'made_up_by_a_newer_gateway', detail: 'x' }),
    );
    const { client } = gateway(fetch);
    await expect(client.connections.get(CONNECTION)).rejects.toMatchObject({ code: 'internal', status: 502 });
    const newer = (await client.connections.get(CONNECTION).catch((e: unknown) => e)) as GatewayError;
    expect(newer).toMatchObject({ code: 'route_not_found', status: 404 });
    expect(newer.problem).toMatchObject({ code: 'made_up_by_a_newer_gateway' });
  });
});

describe('requests', () => {
  it('sends the API key and the JSON body', async () => {
    const { fetch, calls } = scripted(
      json(201, { id: 's', connectUrl: 'https://gw.example/v1/connect/t', expiresAt: 'x' }),
    );
    const { client } = gateway(fetch);
    const session = await client.connect.createSession({
      integration: 'github',
      scopes: ['github:read:repos'],
      callbackUrl: 'https://app.example/cb',
      state: 'st',
    });
    expect(session.connectUrl).toBe('https://gw.example/v1/connect/t');
    expect(calls[0]!.url.href).toBe('https://gw.example/v1/connect/sessions');
    expect(calls[0]!.init.method).toBe('POST');
    expect(new Headers(calls[0]!.init.headers).get('authorization')).toBe('Bearer cg_sk_test');
    expect(JSON.parse(calls[0]!.init.body as string)).toEqual({
      integration: 'github',
      scopes: ['github:read:repos'],
      callbackUrl: 'https://app.example/cb',
      state: 'st',
    });
  });

  it('refuses to start without a key rather than send anonymous requests', () => {
    expect(() => new ContextGateway({ baseUrl: 'https://gw.example', apiKey: '' })).toThrow(/token/);
  });
});

describe('retries', () => {
  it('retries a GET on 503 with exponential backoff and jitter, then succeeds', async () => {
    const { fetch, calls } = scripted(
      problem(503, 'service_unavailable'),
      problem(503, 'service_unavailable'),
      json(200, status),
    );
    const { client, waits } = gateway(fetch);
    await expect(client.sync.status(CONNECTION)).resolves.toEqual(status);
    expect(calls).toHaveLength(3);
    // random() = 0.5 of base 200 ms · 2^attempt
    expect(waits).toEqual([100, 200]);
  });

  it('waits what Retry-After says on 429, in seconds or as an HTTP date', async () => {
    const { fetch } = scripted(
      problem(429, 'rate_limited', { 'retry-after': '2' }),
      problem(429, 'rate_limited', { 'retry-after': 'Fri, 04 Dec 2026 12:00:05 GMT' }),
      json(200, status),
    );
    const { client, waits } = gateway(fetch);
    await client.sync.status(CONNECTION);
    expect(waits).toEqual([2_000, 5_000]);
  });

  it('gives up after maxRetries with the typed error of the last answer', async () => {
    const { fetch, calls } = scripted(problem(503, 'not_ready'), problem(503, 'not_ready'));
    const { client } = gateway(fetch, { maxRetries: 1 });
    const error = await client.records.list(CONNECTION).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect(calls).toHaveLength(2);
  });

  it('does not wait out a Retry-After longer than it is willing to: the caller decides', async () => {
    const { fetch, calls } = scripted(problem(429, 'rate_limited', { 'retry-after': '3600' }));
    const { client, waits } = gateway(fetch);
    await expect(client.records.list(CONNECTION)).rejects.toMatchObject({
      code: 'rate_limited',
      retryAfterSeconds: 3600,
    });
    expect(calls).toHaveLength(1);
    expect(waits).toEqual([]);
  });

  it('never repeats a request that is not idempotent (sync now, revoke, create session)', async () => {
    const { fetch, calls } = scripted(problem(503, 'service_unavailable'), problem(503, 'service_unavailable'));
    const { client } = gateway(fetch);
    await expect(client.sync.now(CONNECTION)).rejects.toBeInstanceOf(UnavailableError);
    await expect(client.connections.revoke(CONNECTION)).rejects.toBeInstanceOf(UnavailableError);
    expect(calls).toHaveLength(2);
  });

  it('does not retry an answer that will not change (a 403 or a 500)', async () => {
    const { fetch, calls } = scripted(problem(403, 'policy_denied'), problem(500, 'internal'));
    const { client } = gateway(fetch);
    await expect(client.records.list(CONNECTION)).rejects.toMatchObject({ code: 'policy_denied' });
    await expect(client.records.list(CONNECTION)).rejects.toMatchObject({ code: 'internal' });
    expect(calls).toHaveLength(2);
  });

  it('retries a GET whose connection failed, and says so when it keeps failing', async () => {
    const refused = new TypeError('fetch failed');
    const { fetch } = scripted(refused, json(200, status), refused, refused);
    const { client } = gateway(fetch, { maxRetries: 1 });
    await expect(client.sync.status(CONNECTION)).resolves.toEqual(status);
    const error = (await client.sync.status(CONNECTION).catch((e: unknown) => e)) as GatewayNetworkError;
    expect(error).toBeInstanceOf(GatewayNetworkError);
    expect(error.cause).toBe(refused);
  });
});
