import { randomUUID } from 'node:crypto';

import { countRows } from '@context-gateway/database/testing';
import { fuzzRpcSubject, fuzzRuns, type RpcFuzzSummary } from '@context-gateway/messaging/testing';
import { allRpcDescriptors, rpc, SUBJECT_PREFIX } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { RuntimeEnv } from '../config/env.js';
import { type HarnessServiceOptions, ServiceHarness } from './service-harness.js';

export interface RpcFuzzSuiteOptions<E extends RuntimeEnv> extends HarnessServiceOptions<E> {
  migrationsDir: string;
  /** Tables the service writes in the background, not per request: left out of "nothing stored". */
  backgroundTables?: readonly string[];
  /** Ids fuzzed requests may name; may create rows through the booted service (default: random ids). */
  known?: (harness: ServiceHarness) => Promise<string[]>;
  /** Fewest subjects the catalog must give the service (guards against a filter that matches nothing). */
  minSubjects: number;
}

/** What the decoder and the descriptor's checks answer, before any handler runs. */
const GENERIC = ['malformed_request', 'validation_failed'];

/**
 * The NATS fuzz suite of one service (docs/fuzzing.md), written once: the service booted as
 * main.ts boots it against its own migrated schema and a private nats-server, then every
 * subject it answers is fed valid, mutated and random protobuf. A reply is a response or a
 * typed error — never `internal`, never none — a rejected request stores nothing, and the
 * service is still ready afterwards.
 */
export function describeRpcFuzz<E extends RuntimeEnv>(options: RpcFuzzSuiteOptions<E>): void {
  const { migrationsDir, backgroundTables = [], known: prepare, minSubjects, ...service } = options;
  const runs = fuzzRuns(40);
  const subjects = allRpcDescriptors().filter((d) => d.subject.startsWith(`${SUBJECT_PREFIX[service.name]}.`));
  const met: Record<string, RpcFuzzSummary> = {};
  let harness: ServiceHarness | undefined;
  let known: string[] = [];

  beforeAll(async () => {
    harness = await ServiceHarness.start({ schemaPrefix: `${service.name}_fuzz`, migrationsDir });
    await harness.run(service);
    known = prepare ? await prepare(harness) : [randomUUID(), randomUUID(), randomUUID()];
    expect(known.every(Boolean)).toBe(true);
  }, 60_000);

  afterAll(async () => {
    await harness?.stop();
  });

  describe(`${service.name} under fuzzed NATS requests`, () => {
    it(`covers every ${service.name} subject in the catalog`, () => {
      expect(subjects.length).toBeGreaterThanOrEqual(minSubjects);
    });

    it.each(subjects.map((d) => [d.subject, d] as const))(
      '%s: a response or a typed error, nothing stored when rejected, still ready',
      async (_subject, descriptor) => {
        if (!harness) throw new Error('the service did not boot');
        const { nc, db } = harness;
        met[descriptor.subject] = await fuzzRpcSubject(descriptor, {
          nc,
          runs,
          health: rpc.health[service.name],
          rowCounts: async () => {
            const counts = await countRows(db.pool, db.schema);
            for (const table of backgroundTables) delete counts[table];
            return counts;
          },
          known,
        });
      },
      60_000 + runs * 200,
    );

    it('reached the handlers, not only the decoder: some requests succeeded and some were refused by a handler', () => {
      const all = Object.values(met);
      expect(all.reduce((n, s) => n + s.ok, 0)).toBeGreaterThan(0);
      expect(all.some((s) => Object.keys(s.errors).some((code) => !GENERIC.includes(code)))).toBe(true);
    });
  });
}
