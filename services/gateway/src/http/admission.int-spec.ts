import { createHash } from 'node:crypto';
import { connect as connectSocket, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

import type { RunningService } from '@context-gateway/service-kit';
import { ServiceHarness } from '@context-gateway/service-kit/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';

import { AppModule } from '../app.module.js';
import { loadEnv } from '../env.js';
import { configureGateway } from './configure.js';
import { leaseSize } from './leased-limit.js';
import { RateLimits } from './rate-limits.js';

// Two gateway replicas on one schema, booted as main.ts boots them, with small limits:
// the per-key and per-address counts are shared through Postgres (a client cannot double
// its allowance by alternating replicas), refusals carry Retry-After, a full gateway sheds
// with 503 before routing, and the probes answer throughout.

const PER_KEY = 4;
const PER_IP = 40;
/** A per-key limit with leases of 2 points: admissions and refusals decided from memory. */
const BIG_PER_KEY = 32;
const MAX_IN_FLIGHT = 2;
const AUTH_FAILURES = 3;
const OPERATOR_TOKEN = 'operator-token-for-the-admission-test-0123456789';

let harness: ServiceHarness;
let replicas: RunningService[];

beforeAll(async () => {
  harness = await ServiceHarness.start({
    schemaPrefix: 'gateway_admission',
    migrationsDir: fileURLToPath(new URL('../../prisma/migrations', import.meta.url)),
  });
  const boot = () =>
    harness.run({
      name: 'gateway',
      module: AppModule,
      loadEnv,
      env: {
        RATE_LIMIT_WINDOW_SECONDS: '60',
        RATE_LIMIT_PER_KEY: String(PER_KEY),
        RATE_LIMIT_PER_IP: String(PER_IP),
        SHED_MAX_IN_FLIGHT: String(MAX_IN_FLIGHT),
        OPERATOR_TOKEN,
        AUTH_FAILURES_PER_IP: String(AUTH_FAILURES),
        AUTH_FAILURE_WINDOW_SECONDS: '60',
      },
      configure: configureGateway,
    });
  replicas = [await boot(), await boot()];
}, 60_000);

afterAll(async () => {
  await harness?.stop();
});

async function get(replica: number, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(new URL(path, replicas[replica]!.url), { headers });
  const body = (await res.json().catch(() => ({}))) as { code?: string };
  return { status: res.status, code: body.code, retryAfter: res.headers.get('retry-after') };
}

/** A request whose body never arrives: it stays in flight until the socket closes. */
function holdOpen(replica: number): Promise<Socket> {
  const url = new URL(replicas[replica]!.url);
  return new Promise((resolve, reject) => {
    const socket = connectSocket({ host: url.hostname, port: Number(url.port) }, () => {
      socket.write(
        'POST /v1/connect/sessions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{',
      );
      // Let the gateway read the head and count the request.
      setTimeout(() => resolve(socket), 300);
    });
    socket.on('error', reject);
  });
}

describe('rate limits shared by the replicas', () => {
  it('one API key gets PER_KEY requests in a window across both replicas, then 429 with Retry-After', async () => {
    const key = { authorization: `Bearer cg_sk_${'k'.repeat(40)}` };
    const answers = [];
    for (let i = 0; i < PER_KEY + 1; i++) answers.push(await get(i % 2, '/v1/openapi.json', key));
    expect(answers.slice(0, PER_KEY).map((a) => a.status)).toEqual(Array(PER_KEY).fill(200));
    const refused = answers[PER_KEY]!;
    expect(refused).toMatchObject({ status: 429, code: 'rate_limited' });
    expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(refused.retryAfter)).toBeLessThanOrEqual(60);
    // The replica that refused it knows the key is spent: refused again, from memory (its
    // address lease of 2 points still holds one, so neither limit asks Postgres).
    const again = await get(PER_KEY % 2, '/v1/openapi.json', key);
    expect(again).toMatchObject({ status: 429, code: 'rate_limited' });
    expect(Number(again.retryAfter)).toBeGreaterThanOrEqual(1);
    // Another key is counted apart.
    expect((await get(1, '/v1/openapi.json', { authorization: `Bearer cg_sk_${'o'.repeat(40)}` })).status).toBe(200);
    // The shared counters are named by the tokens' digests: no token text reaches the table.
    const { rows } = await harness.db.pool.query<{ key: string }>("SELECT key FROM rate_limits WHERE key LIKE 'key:%'");
    const digest = (token: string) => createHash('sha256').update(token, 'utf8').digest('base64url');
    expect(rows.map((r) => r.key).sort()).toEqual(
      [`key:${digest(`cg_sk_${'k'.repeat(40)}`)}`, `key:${digest(`cg_sk_${'o'.repeat(40)}`)}`].sort(),
    );
    expect(rows.filter((r) => r.key.includes('cg_sk_') || r.key.includes('kkkk') || r.key.includes('oooo'))).toEqual(
      [],
    );
  });

  it('with leases above one point, admits and refuses from memory as it does through a lease', async () => {
    // A third replica, with a per-key limit whose leases are 2 points (RATE_LIMIT_REPLICAS 1):
    // every other admission, and every refusal after the lease that found the key spent, is
    // decided from memory, in the request's own tick. No per-address limit on it: its leases
    // would share the address's counter with the other replicas, whose limit is PER_IP.
    const big = await harness.run({
      name: 'gateway',
      module: AppModule,
      loadEnv,
      env: { RATE_LIMIT_WINDOW_SECONDS: '60', RATE_LIMIT_PER_KEY: String(BIG_PER_KEY), RATE_LIMIT_PER_IP: '0' },
      configure: configureGateway,
    });
    expect(leaseSize(BIG_PER_KEY, 1)).toBe(2);
    const key = { authorization: `Bearer cg_sk_${'b'.repeat(40)}` };
    const ask = async () => {
      const res = await fetch(new URL('/v1/openapi.json', big.url), { headers: key });
      const body = (await res.json()) as { code?: string };
      return { status: res.status, code: body.code, retryAfter: Number(res.headers.get('retry-after')) };
    };
    const statuses = [];
    for (let i = 0; i < BIG_PER_KEY; i++) statuses.push((await ask()).status);
    expect(statuses).toEqual(Array(BIG_PER_KEY).fill(200));
    // The first refusal comes from a lease that found the key spent; the next from memory.
    for (let i = 0; i < 2; i++) {
      const refused = await ask();
      expect(refused).toMatchObject({ status: 429, code: 'rate_limited' });
      expect(refused.retryAfter).toBeGreaterThanOrEqual(1);
    }
  });

  it('a process without the shared counter (Postgres unreachable) still limits, with its share', async () => {
    const alone = new RateLimits({
      pool: new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/none' }),
      windowSeconds: 60,
      perKey: 0,
      perIp: 10,
      storeTimeoutMs: 100,
      replicas: 2,
    });
    const started = Date.now();
    const outcomes = [];
    for (let i = 0; i < 6; i++) outcomes.push(await alone.take('192.0.2.1', undefined));
    expect(outcomes.slice(0, 5)).toEqual(Array(5).fill(undefined));
    expect(outcomes[5]).toMatchObject({ limit: 'ip' });
    // Each wait is bounded by the store timeout: the data plane does not hang on Postgres.
    expect(Date.now() - started).toBeLessThan(6 * 1_000);
  });
});

describe('failed authentications per address', () => {
  it('after AUTH_FAILURES_PER_IP refused credentials, across replicas, the address gets 429 even with the right one', async () => {
    const wrong = { authorization: `Bearer ${OPERATOR_TOKEN}-guessed` };
    // A request without any credential is a plain 401 and does not count.
    expect(await get(0, '/v1/admin/organizations')).toMatchObject({ status: 401, code: 'unauthenticated' });
    const answers = [];
    for (let i = 0; i < AUTH_FAILURES + 1; i++) answers.push(await get(i % 2, '/v1/admin/organizations', wrong));
    expect(answers.slice(0, AUTH_FAILURES).map((a) => a.code)).toEqual(Array(AUTH_FAILURES).fill('unauthenticated'));
    expect(answers[AUTH_FAILURES]).toMatchObject({ status: 429, code: 'rate_limited' });
    expect(Number(answers[AUTH_FAILURES]!.retryAfter)).toBeGreaterThanOrEqual(1);
    // Refused before the credential is looked at: the right token does not help until the window ends.
    const right = await get(1, '/v1/admin/organizations', { authorization: `Bearer ${OPERATOR_TOKEN}` });
    expect(right).toMatchObject({ status: 429, code: 'rate_limited' });
    expect(Number(right.retryAfter)).toBeLessThanOrEqual(60);
  });
});

describe('load shedding', () => {
  it('past SHED_MAX_IN_FLIGHT a replica answers 503 with Retry-After at once; the probes still answer', async () => {
    const held = [await holdOpen(0), await holdOpen(0)];
    try {
      const started = Date.now();
      const shed = await get(0, '/v1/openapi.json');
      expect(shed).toMatchObject({ status: 503, code: 'service_unavailable', retryAfter: '1' });
      expect(Date.now() - started).toBeLessThan(1_000);
      expect((await get(0, '/readyz')).status).toBe(200);
      // The other replica is not full.
      expect((await get(1, '/v1/openapi.json')).status).toBe(200);
    } finally {
      for (const socket of held) socket.destroy();
    }
    await new Promise((r) => setTimeout(r, 200));
    expect((await get(0, '/v1/openapi.json')).status).toBe(200);
  });
});

describe('per-address limit', () => {
  it('one address is refused with 429 once both replicas together counted PER_IP requests', async () => {
    let status = 0;
    let sent = 0;
    let answer: Awaited<ReturnType<typeof get>> | undefined;
    while (status !== 429 && sent < PER_IP + 1) {
      answer = await get(sent % 2, '/v1/openapi.json');
      status = answer.status;
      sent += 1;
    }
    expect(answer).toMatchObject({ status: 429, code: 'rate_limited' });
    // Earlier tests used part of this address's window; no more than PER_IP passed in total.
    expect(sent).toBeLessThanOrEqual(PER_IP);
    expect((await get(1, '/readyz')).status).toBe(200);
  });
});
