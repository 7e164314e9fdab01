import { randomUUID } from 'node:crypto';
import { connect as connectSocket } from 'node:net';
import { fileURLToPath } from 'node:url';

import { rpc } from '@context-gateway/proto';
import type { RunningService } from '@context-gateway/service-kit';
import { ServiceHarness } from '@context-gateway/service-kit/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { AppModule } from '../app.module.js';
import { loadEnv } from '../env.js';
import { configureGateway } from './configure.js';

// The whole gateway, booted as main.ts boots it, fed what an attacker sends. Each case was
// a server error (or an answer without a code) before its input was refused at the edge:
// every one must now be a 4xx problem+json with a stable code (or, on the browser-facing
// callback, a 4xx page naming it). The services behind are stubs answering only who is
// calling: nothing here may get further than the edge.

const OPERATOR_TOKEN = 'o'.repeat(40);
const API_KEY = `cg_sk_${'k'.repeat(40)}`;
const AUDITOR_TOKEN = `cg_aud_${'a'.repeat(40)}`;
const CONNECTION = randomUUID();

let harness: ServiceHarness;
let gateway: RunningService;

beforeAll(async () => {
  harness = await ServiceHarness.start({
    schemaPrefix: 'gateway_edge',
    migrationsDir: fileURLToPath(new URL('../../prisma/migrations', import.meta.url)),
  });
  harness.stub(rpc.identity.authenticateApiKey, {
    orgId: randomUUID(),
    applicationId: randomUUID(),
    apiKeyId: randomUUID(),
  });
  harness.stub(rpc.audit.authenticateAuditor, { auditorId: randomUUID(), orgId: randomUUID() });
  gateway = await harness.run({
    name: 'gateway',
    module: AppModule,
    loadEnv,
    env: { OPERATOR_TOKEN },
    configure: configureGateway,
  });
}, 60_000);

afterAll(async () => {
  await harness?.stop();
});

interface Answer {
  status: number;
  contentType: string;
  body: string;
}

async function send(
  method: 'GET' | 'POST' | 'DELETE',
  url: string,
  options: { bearer?: string; json?: string } = {},
): Promise<Answer> {
  // Over the socket, not inject(): the whole HTTP stack, as a client meets it.
  const res = await fetch(new URL(url, gateway.url), {
    method,
    headers: {
      ...(options.bearer ? { authorization: `Bearer ${options.bearer}` } : {}),
      ...(options.json !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(options.json !== undefined ? { body: options.json } : {}),
  });
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: await res.text() };
}

/** The answer is problem+json with this status and code (and the field at fault, when given). */
function expectProblem(answer: Answer, status: number, code: string, path?: string): void {
  expect(answer.contentType).toContain('application/problem+json');
  const problem = JSON.parse(answer.body) as { status: number; code: string; errors?: { path: string }[] };
  expect({ httpStatus: answer.status, status: problem.status, code: problem.code }).toEqual({
    httpStatus: status,
    status,
    code,
  });
  if (path) expect(problem.errors?.map((e) => e.path)).toContain(path);
}

/** One request on a raw socket: what Node's HTTP parser sees before Fastify can. */
function raw(request: string): Promise<{ status: number; contentType: string; body: string }> {
  const { port } = new URL(gateway.url);
  return new Promise((resolve, reject) => {
    const socket = connectSocket(Number(port), '127.0.0.1', () => socket.write(request));
    let data = '';
    socket.on('data', (chunk: Buffer) => (data += chunk.toString('utf8')));
    socket.on('error', reject);
    socket.on('close', () => {
      const [head = '', body = ''] = data.split('\r\n\r\n');
      resolve({
        status: Number(head.split(' ')[1]),
        contentType: /content-type: *([^\r\n]+)/i.exec(head)?.[1] ?? '',
        body,
      });
    });
  });
}

const cursor = (text: string) => Buffer.from(text).toString('base64url');

describe('the nine server errors, now refused at the edge', () => {
  it('a records cursor above the bigint range is 422', async () => {
    const tooBig = cursor('v1:9999999999999999999');
    expectProblem(
      await send('GET', `/v1/connections/${CONNECTION}/records?cursor=${tooBig}`, { bearer: API_KEY }),
      422,
      'validation_failed',
      'cursor',
    );
  });

  it('an upper-case connection id is 422, on every route that takes one', async () => {
    const upper = CONNECTION.toUpperCase();
    for (const [method, url] of [
      ['GET', `/v1/connections/${upper}/records`],
      ['DELETE', `/v1/connections/${upper}/grant`],
      ['GET', `/v1/connections/${upper}`],
      ['GET', `/v1/connections/${upper}/sync`],
    ] as const) {
      expectProblem(await send(method, url, { bearer: API_KEY }), 422, 'validation_failed', 'connectionId');
    }
  });

  it('a NUL in a connect session is 422', async () => {
    const body = JSON.stringify({
      integration: 'github',
      scopes: ['github:read:repos'],
      callbackUrl: 'https://app.example/cb',
      state: 'a\u0000b',
    });
    expectProblem(
      await send('POST', '/v1/connect/sessions', { bearer: API_KEY, json: body }),
      422,
      'validation_failed',
      'state',
    );
  });

  it('a NUL in an organization name is 422', async () => {
    expectProblem(
      await send('POST', '/v1/admin/organizations', { bearer: OPERATOR_TOKEN, json: '{"name":"Acme\\u0000"}' }),
      422,
      'validation_failed',
      'name',
    );
  });

  it('a NUL in passkey registration options is 422, without authentication', async () => {
    expectProblem(
      await send('POST', '/v1/auth/passkeys/registration/options', { json: '{"displayName":"Ada\\u0000"}' }),
      422,
      'validation_failed',
      'displayName',
    );
  });

  it('a NUL in an audit search is 422', async () => {
    expectProblem(
      await send('GET', '/v1/audit/entries?integration=git%00hub', { bearer: AUDITOR_TOKEN }),
      422,
      'validation_failed',
      'integration',
    );
  });

  it('a source callback without a query, or with a 10,000-character state, is a 400 page naming the code', async () => {
    for (const url of ['/v1/connect/callback', `/v1/connect/callback?code=c&state=${'s'.repeat(10_000)}`]) {
      const answer = await send('GET', url);
      expect(answer.status).toBe(400);
      expect(answer.contentType).toContain('text/html');
      expect(answer.body).toContain('oauth_state_invalid');
    }
  });
});

describe('input held to one spelling', () => {
  it('numbers are decimal digits: limit=0x10 is 422, not 16', async () => {
    for (const limit of ['0x10', '1e1', '%2016', '']) {
      expectProblem(
        await send('GET', `/v1/connections/${CONNECTION}/records?limit=${limit}`, { bearer: API_KEY }),
        422,
        'validation_failed',
        'limit',
      );
    }
    expectProblem(
      await send('GET', '/v1/audit/checkpoint?treeSize=0x10', { bearer: AUDITOR_TOKEN }),
      422,
      'validation_failed',
      'treeSize',
    );
  });

  it('what is well-formed passes the edge (and, with no shard behind this test, meets 503)', async () => {
    const url = `/v1/connections/${CONNECTION}/records?limit=16&cursor=${cursor('v1:9223372036854775807')}`;
    expectProblem(await send('GET', url, { bearer: API_KEY }), 503, 'service_unavailable');
  });

  it('a cursor that is not one the API returned is 422', async () => {
    for (const c of [cursor('v1:-1'), cursor('v2:1'), 'not*base64']) {
      expectProblem(
        await send('GET', `/v1/connections/${CONNECTION}/records?cursor=${encodeURIComponent(c)}`, { bearer: API_KEY }),
        422,
        'validation_failed',
        'cursor',
      );
    }
  });

  it('an audit search with from after to is 422', async () => {
    const q = 'from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z';
    expectProblem(
      await send('GET', `/v1/audit/entries?${q}`, { bearer: AUDITOR_TOKEN }),
      422,
      'validation_failed',
      'from',
    );
    expectProblem(
      await send('GET', `/v1/audit/export?${q}`, { bearer: AUDITOR_TOKEN }),
      422,
      'validation_failed',
      'from',
    );
  });

  it('a lone surrogate is 422, in a value or in a field name, never stored as U+FFFD', async () => {
    expectProblem(
      await send('POST', '/v1/admin/organizations', { bearer: OPERATOR_TOKEN, json: '{"name":"Acme \\ud800"}' }),
      422,
      'validation_failed',
      'name',
    );
    expectProblem(
      await send('POST', '/v1/admin/organizations', { bearer: OPERATOR_TOKEN, json: '{"name":"Acme","\\udc00":1}' }),
      422,
      'validation_failed',
      'body',
    );
  });

  it('a NUL in a path parameter is 422', async () => {
    expectProblem(
      await send('GET', `/v1/connections/${CONNECTION}%00/records`, { bearer: API_KEY }),
      422,
      'validation_failed',
      'connectionId',
    );
  });
});

describe("the HTTP parser's rejections answer problem+json with a code", () => {
  it('headers too large: 431', async () => {
    const answer = await raw(`GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expectProblem(answer, 431, 'malformed_request');
  });

  it('a request target that is not a path: 400', async () => {
    for (const target of ['v1/connect/callback', '/v1/a b', '/v1/\u007f']) {
      expectProblem(await raw(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`), 400, 'malformed_request');
    }
  });

  it('a path that does not decode: 400', async () => {
    expectProblem(await send('GET', '/v1/connect/%E0%A4%A'), 400, 'malformed_request');
  });
});
