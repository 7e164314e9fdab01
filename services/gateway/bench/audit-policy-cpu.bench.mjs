// CPU per records query of the gateway's audit event and policy check, counted with
// process.cpuUsage (this process only), not wall clock: meaningful on a busy machine.
//
//   node services/gateway/bench/audit-policy-cpu.bench.mjs            # all four parts
//   BENCH_PART=audit BENCH_ROUNDS=400 node services/gateway/bench/audit-policy-cpu.bench.mjs
//   BENCH_GATEWAY_DIST=<another checkout>/services/gateway/dist node …   (that checkout's code)
//
// Runs the built dist/ (pnpm build first), against a private nats-server with JetStream:
// - audit: AuditRouteInterceptor around a handler that sets its audit subject as a records
//   query does (guard, handler, policy verdict, owner), the AuditRecorder and its group commit
//   publishing to a file-storage AUDIT stream and waiting for the ack: CPU µs per event.
// - policy: per request, the auth check's CONTROL freshness question (ControlHead.latestSeq)
//   then RecordsPolicy.check (PolicyDecider: freshness, cached org rules, decisions) and the
//   verdict as the audit keeps it (auditPolicyOf): CPU µs per request.
// - revocations: per request, the API key check's wait for the CONTROL stream read up to date
//   (TokenRevocations.upToDate: the head's question, its fail-closed deadline): CPU µs per request.
// - limits: per request, admission's per-address and per-key rate limits (RateLimits.take)
//   while this replica holds leased points; the lease store answers at once (no Postgres): CPU
//   µs per request. The admission hook waits on a promise only when take returns one; here an
//   answer decided from memory is wrapped in Promise.resolve too (asRequest awaits every
//   request), so the figure overstates what the hook pays, and understates the saving.
// Each request runs inside a request context and a (non-recording) server span, as the HTTP
// edge runs it, so AsyncLocalStorage's promise hooks cost what they cost there. CONCURRENCY
// requests start in each turn of the event loop (they share one audit batch and one round trip).
import 'reflect-metadata';

import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

import { create } from '@bufbuild/protobuf';
import { systemClock } from '@context-gateway/clock';
import { connectNats, ensureStreams } from '@context-gateway/messaging';
import { startPrivateNats } from '@context-gateway/messaging/testing';
import { createLogger, initTracing, runWithRequestContext, tracer } from '@context-gateway/observability';
import { GetCompiledRulesResponseSchema, PolicyEffect, PolicyLayer, streams } from '@context-gateway/proto';
import { lastValueFrom, of } from 'rxjs';

// The OpenTelemetry API the observability library registers its context manager with.
const { context, SpanKind, trace } = createRequire(
  new URL('../../../libs/observability/package.json', import.meta.url),
)('@opentelemetry/api');

const dist = process.env.BENCH_GATEWAY_DIST
  ? pathToFileURL(`${resolve(process.env.BENCH_GATEWAY_DIST)}/`)
  : new URL('../dist/', import.meta.url);
const load = (path) => import(new URL(path, dist).href);
const { AuditRecorder } = await load('audit/audit-recorder.js');
const { AuditRouteInterceptor } = await load('audit/audit-route.interceptor.js');
const { setAuditSubject } = await load('audit/audit-subject.js');
const { ControlHead } = await load('policy/control-head.js');
const { PolicyDecider, auditPolicyOf } = await load('policy/policy-decider.js');
const { RecordsPolicy } = await load('records/records-policy.js');
const { TokenRevocations } = await load('oauth/token-revocations.js');
const { RateLimits } = await load('http/rate-limits.js');

const PART = process.env.BENCH_PART ?? 'all';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 300);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const WARMUP_ROUNDS = Math.max(50, Math.round(ROUNDS / 4));

const logger = createLogger({ service: 'bench', level: 'silent' });
const tracing = await initTracing({ service: 'bench', exporter: 'none' });
const nats = await startPrivateNats();
const nc = await connectNats({ url: nats.url, name: 'bench-audit-policy', logger, bootTimeoutMs: 5_000 });
await ensureStreams(nc, [streams.audit, streams.control], logger);

const ORG = randomUUID();
const APP = randomUUID();
const USER = randomUUID();
const KEY = randomUUID();
const CONNECTION = randomUUID();

/** One request as the HTTP edge runs it: a request context and an active (unsampled) server span. */
function asRequest(fn) {
  const span = tracer().startSpan('GET /v1/connections/:connectionId/records', { kind: SpanKind.SERVER });
  return runWithRequestContext({ requestId: randomUUID() }, () =>
    context.with(trace.setSpan(context.active(), span), () => fn().finally(() => span.end())),
  );
}

/** CPU µs per request of `one`, CONCURRENCY at a time, after a warm-up. */
async function measure(one) {
  const round = () => Promise.all(Array.from({ length: CONCURRENCY }, () => asRequest(one)));
  for (let i = 0; i < WARMUP_ROUNDS; i++) await round();
  const cpu = process.cpuUsage();
  for (let i = 0; i < ROUNDS; i++) await round();
  const used = process.cpuUsage(cpu);
  return (used.user + used.system) / (ROUNDS * CONCURRENCY);
}

const results = {};

if (PART === 'all' || PART === 'audit') {
  const recorder = new AuditRecorder(nc, { AUDIT_PUBLISH_TIMEOUT_MS: 5_000 }, systemClock);
  const definition = { method: 'GET', audit: { action: 'data_query' } };
  const interceptor = new AuditRouteInterceptor({ get: () => definition }, recorder);
  const policy = { decidedBy: 'none', reason: 'allowed', matchedRuleIds: ['org:integration:spotify', 'grant:g1'] };
  const auditedQuery = () => {
    const request = {
      id: randomUUID(),
      params: { connectionId: CONNECTION },
      routeOptions: { url: '/v1/connections/:connectionId/records' },
      url: `/v1/connections/${CONNECTION}/records?type=media.playlist`,
    };
    // What the guard, then the records handler set, in the order they set it.
    setAuditSubject(request, { orgId: ORG, applicationId: APP, actorKind: 'api_key', actorId: KEY });
    const handler = {
      handle: () => {
        setAuditSubject(request, { connectionId: CONNECTION, resource: 'media.playlist' });
        setAuditSubject(request, { policy });
        setAuditSubject(request, { userId: USER, integration: 'spotify' });
        return of({ records: [] });
      },
    };
    const executionContext = {
      getHandler: () => auditedQuery,
      getType: () => 'http',
      switchToHttp: () => ({ getRequest: () => request }),
    };
    return lastValueFrom(interceptor.intercept(executionContext, handler));
  };
  results.auditUsPerEvent = await measure(auditedQuery);
}

if (PART === 'all' || PART === 'policy') {
  const scopes = [
    'spotify:read:profile',
    'spotify:read:playlists',
    'spotify:read:library',
    'spotify:read:recently_played',
  ];
  const rule = (id, layer, subject, target) =>
    create(GetCompiledRulesResponseSchema.field.rules.message, {
      id,
      layer,
      subject,
      effect: PolicyEffect.ALLOW,
      ...target,
    });
  const compiled = create(GetCompiledRulesResponseSchema, {
    orgId: ORG,
    revision: 1n,
    controlSeq: 0n,
    rules: [
      rule(`org:${ORG}:integration:spotify`, PolicyLayer.ORG, ORG, { integration: 'spotify' }),
      ...scopes.map((scope) => rule(`grant:g1:${scope}`, PolicyLayer.USER, USER, { capability: scope })),
      ...scopes.map((scope) => rule(`app:${APP}:${scope}`, PolicyLayer.APPLICATION, APP, { capability: scope })),
    ],
    knownCapabilities: scopes,
    applicationIds: [APP],
    grantees: [{ applicationId: APP, userId: USER }],
  });
  const rpcClient = { request: () => Promise.resolve(compiled) };
  const head = new ControlHead(nc);
  const env = { POLICY_FRESHNESS_TIMEOUT_MS: 5_000 };
  const decider = new PolicyDecider(rpcClient, nc, env, logger, head);
  await decider.onApplicationBootstrap();
  const records = new RecordsPolicy(decider);
  const caller = { orgId: ORG, applicationId: APP };
  const placement = { shard: 0, userId: USER, integration: 'spotify' };
  const checkedQuery = async () => {
    // The auth check asks first (token revocations); the policy check finds its answer.
    await head.latestSeq();
    const verdict = await records.check(caller, placement, 'media.playlist');
    if (verdict.kind !== 'allowed' || !verdict.decision) throw new Error(`policy said ${verdict.kind}`);
    return auditPolicyOf(verdict.decision);
  };
  results.policyUsPerRequest = await measure(checkedQuery);
  await decider.onApplicationShutdown();
}

if (PART === 'all' || PART === 'revocations') {
  const revocations = new TokenRevocations(nc, new ControlHead(nc), logger);
  await revocations.start();
  // As ApiKeyCache.authenticate waits before it trusts a remembered key.
  results.revocationsUsPerRequest = await measure(() => revocations.upToDate(3_000));
  await revocations.stop();
}

if (PART === 'all' || PART === 'limits') {
  // A store that leases at once: what is measured is the requests between two leases.
  const pool = {
    query: (_text, values) => Promise.resolve({ rows: [{ points: values[1], expire: values[2] }] }),
  };
  const limits = new RateLimits({
    pool,
    windowSeconds: 60,
    perKey: 1e9,
    perIp: 1e9,
    storeTimeoutMs: 1_000,
    replicas: 1,
  });
  const bearer = { token: `cg_sk_${KEY}`, digest: 'a'.repeat(64) };
  // Wrapped for asRequest only: the admission hook itself goes on without a promise here.
  results.limitsUsPerRequest = await measure(() => {
    const limited = limits.take('127.0.0.1', bearer);
    return limited instanceof Promise ? limited : Promise.resolve(limited);
  });
}

await nc.close();
await nats.stop();
await tracing.shutdown();
const fixed = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, Number(v.toFixed(2))]));
console.log(JSON.stringify({ rounds: ROUNDS, concurrency: CONCURRENCY, ...fixed }));
