import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';

import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { ErrorCodes } from '@context-gateway/errors';
import { fuzzParameters, fuzzRuns } from '@context-gateway/messaging/testing';
import { allRpcDescriptors, ErrorReplySchema, rpc } from '@context-gateway/proto';
import type { RunningService } from '@context-gateway/service-kit';
import { ServiceHarness } from '@context-gateway/service-kit/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import fc from 'fast-check';

import { AppModule } from '../app.module.js';
import { loadEnv } from '../env.js';
import { configureGateway } from './configure.js';
import { conforming, type JsonSchema, mutated } from './json-schema-arbitrary.js';

// Every public route, fuzzed from the gateway's own OpenAPI document (docs/fuzzing.md): path,
// query and body generated from each operation's JSON schemas, then mutated, sent with the
// right credential, a wrong one or none. The gateway is booted as main.ts boots it; behind
// it, stubs answer who is calling and every other subject answers service_unavailable while
// recording what reached it. The property: no 5xx but a deliberate 503 with a code, an
// answer in time, no write reaches a service for a request answered 4xx, and the gateway
// still live and ready afterwards.
const RUNS = fuzzRuns(30);
const OPERATOR_TOKEN = 'o'.repeat(40);
const API_KEY = `cg_sk_${'k'.repeat(40)}`;
const AUDITOR_TOKEN = `cg_aud_${'a'.repeat(40)}`;
const SESSION = 's'.repeat(43);
const HANG_MS = 10_000;
/** Subjects that only read or authenticate; any other one reached is a write. */
const READ_VERB =
  /\.(health|authenticate_\w+|resolve_session|get_\w+|list_\w+|search_\w+|explain|locate_connection|query)$/;

let harness: ServiceHarness;
let gateway: RunningService;
/** Subjects reached per edge request id (the gateway forwards it as cg-request-id). */
const reached = new Map<string, string[]>();

/** Answers service_unavailable, as a subject with its service down would, and records the caller. */
function recorder(nc: NatsConnection, subject: string): void {
  const h = natsHeaders();
  h.set('cg-status', 'error');
  const body = toBinary(
    ErrorReplySchema,
    create(ErrorReplySchema, { code: 'service_unavailable', message: 'stubbed out', problems: [] }),
  );
  nc.subscribe(subject, {
    callback: (_error, msg) => {
      const id = msg.headers?.get('cg-request-id') ?? '';
      reached.set(id, [...(reached.get(id) ?? []), subject]);
      msg.respond(body, { headers: h });
    },
  });
}

beforeAll(async () => {
  harness = await ServiceHarness.start({
    schemaPrefix: 'gateway_fuzz',
    migrationsDir: fileURLToPath(new URL('../../prisma/migrations', import.meta.url)),
  });
  const caller = { orgId: randomUUID(), applicationId: randomUUID(), apiKeyId: randomUUID() };
  harness.stub(rpc.identity.authenticateApiKey, caller);
  harness.stub(rpc.audit.authenticateAuditor, { auditorId: randomUUID(), orgId: caller.orgId });
  harness.stub(rpc.identity.resolveSession, {
    user: { id: randomUUID(), displayName: 'Fuzz' },
    expiresAt: timestampFromDate(new Date(Date.now() + 3_600_000)),
    authenticatedAt: timestampFromDate(new Date()),
  });
  const stubbed = new Set([
    rpc.identity.authenticateApiKey,
    rpc.audit.authenticateAuditor,
    rpc.identity.resolveSession,
  ]);
  for (const d of allRpcDescriptors())
    if (!stubbed.has(d as never) && !d.subject.startsWith('gateway.')) recorder(harness.nc, d.subject);
  await harness.nc.flush();
  gateway = await harness.run({
    name: 'gateway',
    module: AppModule,
    loadEnv,
    env: {
      OPERATOR_TOKEN,
      // A stubbed-out policy must fail closed quickly, not hold each request for the default 3 s.
      POLICY_FRESHNESS_TIMEOUT_MS: '50',
      AUDIT_PUBLISH_TIMEOUT_MS: '500',
    },
    configure: configureGateway,
  });
}, 60_000);

afterAll(async () => {
  await harness?.stop();
});

interface Operation {
  method: string;
  path: string;
  security: string[];
  parameters: { name: string; in: 'path' | 'query'; required: boolean; schema: JsonSchema }[];
  body?: JsonSchema;
}

async function operations(): Promise<Operation[]> {
  const doc = (await (await fetch(new URL('/v1/openapi.json', gateway.url))).json()) as {
    paths: Record<string, Record<string, Record<string, unknown>>>;
  };
  return Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => ({
      method: method.toUpperCase(),
      path,
      security: ((op.security ?? []) as Record<string, unknown>[]).flatMap((s) => Object.keys(s)),
      parameters: (op.parameters ?? []) as Operation['parameters'],
      body: (op.requestBody as { content?: Record<string, { schema: JsonSchema }> } | undefined)?.content?.[
        'application/json'
      ]?.schema,
    })),
  );
}

/** Path segments a router or a decoder may trip on. */
const weirdSegment = fc.constantFrom(
  '..',
  '.',
  '%00',
  '%2F',
  '%2e%2e',
  '%E0%A4%A',
  '%ZZ',
  '%ED%A0%80',
  'a'.repeat(5_000),
  '%20',
  '%F0%9F%A6%80',
  '-1',
  '0x10',
);

const asText = (value: unknown): string => (typeof value === 'string' ? value : (JSON.stringify(value) ?? ''));

/** Percent-encodes a value; a lone surrogate goes out as its WTF-8 bytes, which no decoder accepts. */
function encode(value: unknown): string {
  return [...asText(value)]
    .map((ch) => {
      try {
        return encodeURIComponent(ch);
      } catch {
        return '%ED%A0%80';
      }
    })
    .join('');
}

interface FuzzRequest {
  url: string;
  auth: 'right' | 'none' | 'wrong';
  body?: string;
  mutatedInput: boolean;
}

function requestFor(op: Operation): fc.Arbitrary<FuzzRequest> {
  const param = (p: Operation['parameters'][number]) =>
    fc.oneof(
      { weight: 4, arbitrary: conforming(p.schema).map((v) => ({ value: encode(v), bad: false })) },
      {
        weight: 1,
        arbitrary: conforming(p.schema)
          .chain(mutated)
          .map((v) => ({ value: encode(v), bad: true })),
      },
      ...(p.in === 'path' ? [{ weight: 1, arbitrary: weirdSegment.map((value) => ({ value, bad: true })) }] : []),
    );
  const params = fc.tuple(
    ...op.parameters.map((p) => (p.required ? param(p) : fc.option(param(p), { nil: undefined, freq: 2 }))),
  );
  const body = op.body
    ? fc.oneof(
        { weight: 3, arbitrary: conforming(op.body).map((v) => ({ text: JSON.stringify(v), bad: false })) },
        {
          weight: 2,
          arbitrary: conforming(op.body)
            .chain(mutated)
            .map((v) => ({ text: JSON.stringify(v) ?? '', bad: true })),
        },
        {
          weight: 1,
          arbitrary: fc.constantFrom('{', '', 'null', '{"a":1,"a":2}', '\u0000').map((text) => ({ text, bad: true })),
        },
      )
    : fc.constant(undefined);
  return fc
    .tuple(params, body, fc.constantFrom<FuzzRequest['auth']>('right', 'right', 'right', 'none', 'wrong'))
    .map(([values, b, auth]) => {
      let path = op.path;
      const raw: string[] = [];
      op.parameters.forEach((p, i) => {
        const v = values[i];
        if (!v) return;
        if (p.in === 'path') path = path.replace(`{${p.name}}`, v.value === '' ? '%20' : v.value);
        else raw.push(`${encodeURIComponent(p.name)}=${v.value}`);
      });
      return {
        url: raw.length > 0 ? `${path}?${raw.join('&')}` : path,
        auth,
        ...(b ? { body: b.text } : {}),
        mutatedInput: values.some((v) => v?.bad) || Boolean(b?.bad),
      };
    });
}

function credentials(op: Operation, auth: FuzzRequest['auth']): Record<string, string> {
  if (auth === 'none') return {};
  if (auth === 'wrong') return { authorization: 'Bearer cg_sk_wrong', cookie: '__Host-cg_session=%ZZ' };
  const scheme = op.security[0];
  if (scheme === 'userSession') return { cookie: `__Host-cg_session=${SESSION}` };
  const token = { apiKey: API_KEY, operatorToken: OPERATOR_TOKEN, auditorToken: AUDITOR_TOKEN }[scheme ?? ''];
  return token ? { authorization: `Bearer ${token}` } : {};
}

async function send(op: Operation, r: FuzzRequest) {
  const requestId = randomUUID();
  const res = await fetch(new URL(r.url, gateway.url), {
    method: op.method,
    redirect: 'manual',
    headers: {
      'x-request-id': requestId,
      ...credentials(op, r.auth),
      ...(r.body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(r.body !== undefined ? { body: r.body } : {}),
    signal: AbortSignal.timeout(HANG_MS),
  }).catch((error: unknown) => {
    throw new Error(`${op.method} ${r.url}: no answer within ${HANG_MS} ms (${String(error)})`);
  });
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: await res.text(), requestId };
}

const stats: Record<string, number> = {};

describe('every public route under fuzzed input', () => {
  let ops: Operation[] = [];
  beforeAll(async () => {
    ops = await operations();
  });

  it('reads the operations from the OpenAPI document', () => {
    expect(ops.length).toBeGreaterThan(20);
  });

  it(
    'never a 5xx but a deliberate 503, never a hang, no write behind a 4xx, still healthy',
    async () => {
      for (const op of ops) {
        await fc.assert(
          fc.asyncProperty(requestFor(op), async (r) => {
            const answer = await send(op, r);
            const where = `${op.method} ${r.url.slice(0, 200)} (auth ${r.auth}) → ${answer.status} ${answer.body.slice(0, 300)}`;
            stats[String(answer.status)] = (stats[String(answer.status)] ?? 0) + 1;
            const problem = answer.contentType.includes('application/problem+json')
              ? (JSON.parse(answer.body) as { code?: string })
              : undefined;
            if (answer.status >= 500) {
              // 503 is deliberate when it names why (service_unavailable, admin_disabled, ...): the stubs are down.
              // A browser page names its code in the HTML instead; /v1/health says `degraded`
              // (to anonymous callers, nothing more: the services behind it are stubs or down).
              const code =
                problem?.code ??
                /service_unavailable|[a-z]+_unavailable/.exec(answer.body)?.[0] ??
                (answer.body === '{"status":"degraded"}' ? 'not_ready' : undefined);
              if (answer.status !== 503 || !code || code === 'internal') throw new Error(`server error: ${where}`);
            }
            if (problem && !(String(problem.code) in ErrorCodes)) throw new Error(`unknown code: ${where}`);
            if (answer.status >= 400 && answer.status < 500) {
              const writes = (reached.get(answer.requestId) ?? []).filter((s) => !READ_VERB.test(s));
              if (writes.length > 0)
                throw new Error(`answered ${answer.status} after writing via ${writes.join(', ')}: ${where}`);
            }
          }),
          fuzzParameters(RUNS),
        );
        for (const probe of ['/healthz', '/readyz']) {
          const res = await fetch(new URL(probe, gateway.url), { signal: AbortSignal.timeout(HANG_MS) });
          expect({ after: `${op.method} ${op.path}`, probe, status: res.status }).toEqual({
            after: `${op.method} ${op.path}`,
            probe,
            status: 200,
          });
        }
      }
      // The fuzzer got past the edge, not only into its 422s: some inputs met the stubbed-out services.
      expect(stats['503']).toBeGreaterThan(0);
      expect(stats['422']).toBeGreaterThan(0);
    },
    120_000 + RUNS * 4_000,
  );
});
