/**
 * `pnpm bench:policy`: decisions per second in process, our engine vs cedar-wasm, on the
 * same corpus and requests. Run from the compiled output (see package.json "bench").
 */
import { availableParallelism, cpus } from 'node:os';

import cedar from '@cedar-policy/cedar-wasm/nodejs';

import { compilePolicies, type Decision, type PolicyRequest } from '../src/index.js';
import { fromCedarAnswers, policySetText, toCedarQuery } from '../test-support/cedar-oracle.js';
import { buildCorpus } from './corpus.js';

const ENGINE_SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const CEDAR_SECONDS = Number(process.env.BENCH_CEDAR_SECONDS ?? 5);

function percentile(sorted: Float64Array, p: number): number {
  const value = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
  if (value === undefined) throw new RangeError('no samples');
  return value;
}

/** Per-decision latency with the cost of reading the clock itself subtracted. */
function latencies(decide: (r: PolicyRequest) => unknown, requests: PolicyRequest[], count: number) {
  const clock = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    clock[i] = Number(process.hrtime.bigint() - t0);
  }
  const samples = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const request = requests[i % requests.length];
    if (request === undefined) throw new RangeError('no requests');
    const t0 = process.hrtime.bigint();
    decide(request);
    samples[i] = Number(process.hrtime.bigint() - t0);
  }
  clock.sort();
  samples.sort();
  const overhead = percentile(clock, 0.5);
  return {
    p50: Math.max(0, percentile(samples, 0.5) - overhead),
    p99: Math.max(0, percentile(samples, 0.99) - overhead),
  };
}

function throughput(
  decide: (r: PolicyRequest) => Decision,
  requests: PolicyRequest[],
  seconds: number,
  chunk = 10_000,
) {
  let decisions = 0;
  let allowed = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  while (performance.now() < deadline) {
    for (let i = 0; i < chunk; i++) {
      const request = requests[(decisions + i) % requests.length];
      if (request === undefined) throw new RangeError('no requests');
      if (decide(request).allowed) allowed++;
    }
    decisions += chunk;
  }
  const elapsed = (performance.now() - started) / 1000;
  return { perSecond: decisions / elapsed, allowedShare: allowed / decisions, decisions };
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

const corpus = buildCorpus();
const perOrg = [...corpus.rulesByOrg.values()].map((r) => r.length);
console.log(`machine: ${cpus()[0]?.model ?? '?'} × ${availableParallelism()}, node ${process.version}, one thread`);
console.log(
  `corpus: ${corpus.rulesByOrg.size} orgs, ${fmt(corpus.rules.length)} rules (${Math.min(...perOrg)}–${Math.max(...perOrg)} per org), ` +
    `${corpus.catalog.length} catalog capabilities, ${fmt(corpus.requests.length)} distinct requests`,
);

let t = performance.now();
const engine = compilePolicies(corpus.rules, { knownCapabilities: corpus.catalog });
console.log(`engine: compiled all rules in ${(performance.now() - t).toFixed(0)} ms`);
const decide = (r: PolicyRequest) => engine.decide(r);
throughput(decide, corpus.requests, 1); // warm-up, lets the JIT settle
// Hot: the same 1,000 requests over and over (a busy app's working set, CPU caches warm).
// Cold: 200,000 distinct requests across all orgs, so most lookups miss the CPU caches.
const hotRequests = corpus.requests.slice(0, 1_000);
const hot = throughput(decide, hotRequests, ENGINE_SECONDS);
const ours = throughput(decide, corpus.requests, ENGINE_SECONDS);
const oursLatency = latencies(decide, corpus.requests, 1_000_000);
console.log(
  `engine: hot  ${fmt(hot.perSecond)} decisions/s (1,000 distinct requests, ${(hot.allowedShare * 100).toFixed(0)}% allowed)`,
);
console.log(
  `engine: cold ${fmt(ours.perSecond)} decisions/s (${fmt(corpus.requests.length)} distinct requests, ${(ours.allowedShare * 100).toFixed(0)}% allowed), ` +
    `per decision p50 ${fmt(oursLatency.p50)} ns, p99 ${fmt(oursLatency.p99)} ns`,
);

// Cedar gets the same encoding as the differential test's oracle, one preparsed policy set
// per org (that org's org, app and user rules), three evaluations per request.
t = performance.now();
for (const [orgId, rules] of corpus.rulesByOrg) {
  const parsed = cedar.preparsePolicySet(orgId, { staticPolicies: policySetText(rules) });
  if (parsed.type !== 'success') throw new Error(JSON.stringify(parsed.errors));
}
console.log(
  `cedar-wasm ${cedar.getCedarVersion()}: preparsed ${corpus.rulesByOrg.size} per-org policy sets in ${(performance.now() - t).toFixed(0)} ms`,
);
const known = new Set(corpus.catalog);
const cedarDecide = (request: PolicyRequest): Decision => {
  const rules = corpus.rulesByOrg.get(request.orgId);
  if (rules === undefined) throw new Error(`no rules for ${request.orgId}`);
  const query = toCedarQuery(rules, request, known);
  const answers = query.calls.map((call) =>
    cedar.statefulIsAuthorized({ ...call, preparsedPolicySetId: request.orgId }),
  );
  return fromCedarAnswers(rules, answers);
};
// The request-building is kept outside neither side's timing on purpose: both get
// a PolicyRequest and must return a Decision with the explanation.
const theirs = throughput(cedarDecide, corpus.requests, CEDAR_SECONDS, 10);
const theirLatency = latencies(cedarDecide, corpus.requests, 500);
console.log(
  `cedar-wasm: ${fmt(theirs.perSecond)} decisions/s (${fmt(theirs.decisions)} in ${CEDAR_SECONDS} s), p50 ${fmt(theirLatency.p50)} ns, p99 ${fmt(theirLatency.p99)} ns`,
);
console.log(`engine (cold) is ${fmt(ours.perSecond / theirs.perSecond)}× cedar-wasm on this corpus`);

// Same answers, not just faster ones: compare both on a slice of the traffic.
let divergent = 0;
const sample = corpus.requests.slice(0, 1_000);
const checked = sample.length;
for (const request of sample) {
  if (JSON.stringify(engine.decide(request)) !== JSON.stringify(cedarDecide(request))) divergent++;
}
console.log(`agreement: ${checked - divergent}/${checked} requests decided identically (decision and explanation)`);
if (divergent > 0) process.exitCode = 1;
