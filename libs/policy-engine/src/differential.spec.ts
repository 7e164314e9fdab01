import { availableParallelism } from 'node:os';

import { afterAll, describe, expect, it } from '@jest/globals';

import { fromCedarAnswers, toCedarQuery } from '../test-support/cedar-oracle.js';
import { CedarPool } from '../test-support/cedar-pool.js';
import { RandomPolicies, seededRandom, WORLD } from '../test-support/random-policies.js';
import { compilePolicies, type Decision, type DecisionReason, type PolicyRequest, type PolicyRule } from './index.js';

// The issue asks for at least 100,000 compared cases; a smaller count is for local iteration only.
const CASES = Number(process.env.POLICY_DIFFERENTIAL_CASES ?? 100_000);
// A divergence report names its seed and case number, so it can be replayed exactly.
const SEED = Number(process.env.POLICY_DIFFERENTIAL_SEED ?? 20_261_101);
const BATCH = 500;

interface Case {
  index: number;
  rules: PolicyRule[];
  request: PolicyRequest;
  engine: Decision;
}

describe('engine vs Cedar (differential)', () => {
  const pool = new CedarPool(Math.max(1, Math.min(4, availableParallelism())));
  afterAll(() => pool.close());

  it(`agrees with the Cedar encoding on ${CASES} random rule sets and requests`, async () => {
    const random = new RandomPolicies(seededRandom(SEED));
    const known = new Set<string>(WORLD.knownCapabilities);
    const outcomes: Record<string, number> = {};
    const divergences: unknown[] = [];
    const started = performance.now();

    const compare = async (cases: Case[]) => {
      const answers = await pool.run(cases.map((c) => toCedarQuery(c.rules, c.request, known)));
      cases.forEach((c, i) => {
        const oracle = fromCedarAnswers(c.rules, answers[i]!);
        const key = `${c.engine.reason}:${c.engine.decidedBy ?? '-'}`;
        outcomes[key] = (outcomes[key] ?? 0) + 1;
        if (JSON.stringify(c.engine) !== JSON.stringify(oracle) && divergences.length < 5) {
          divergences.push({ seed: SEED, case: c.index, rules: c.rules, request: c.request, engine: c.engine, oracle });
        }
      });
    };

    // Each case is its own rule set and request; the engine decides here while the
    // workers run Cedar on the batches already sent.
    const inFlight: Promise<void>[] = [];
    for (let start = 0; start < CASES; start += BATCH) {
      const cases: Case[] = [];
      for (let index = start; index < Math.min(CASES, start + BATCH); index++) {
        const request = random.request();
        const rules = random.ruleSet(request);
        const engine = compilePolicies(rules, { knownCapabilities: known }).decide(request);
        cases.push({ index, rules, request, engine });
      }
      inFlight.push(compare(cases));
      if (inFlight.length >= 8) await inFlight.shift();
    }
    await Promise.all(inFlight);

    const seconds = (performance.now() - started) / 1000;
    process.stdout.write(
      `differential: ${CASES} cases in ${seconds.toFixed(1)} s, outcomes ${JSON.stringify(outcomes)}\n`,
    );
    expect(divergences).toEqual([]);
    expect(Object.values(outcomes).reduce((a, b) => a + b, 0)).toBe(CASES);
    // The comparison only means something if the random cases reach every outcome, often.
    const reasons: DecisionReason[] = ['allowed', 'deny_rule', 'no_allow', 'unknown_capability'];
    for (const reason of reasons) {
      const count = Object.entries(outcomes)
        .filter(([key]) => key.startsWith(reason + ':'))
        .reduce((sum, [, n]) => sum + n, 0);
      expect(count).toBeGreaterThan(CASES * 0.03);
    }
    for (const layer of ['org', 'user', 'application']) {
      expect(outcomes[`deny_rule:${layer}`] ?? 0).toBeGreaterThan(CASES * 0.01);
      expect(outcomes[`no_allow:${layer}`] ?? 0).toBeGreaterThan(CASES * 0.01);
    }
    // A guard against a hang, not a speed limit: 100,000 Cedar evaluations take about a minute
    // on a quiet 2-core machine and passed 120 s on a loaded one (load ~17), failing the tier.
  }, 900_000);
});
