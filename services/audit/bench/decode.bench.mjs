// CPU per event of the audit decoder thread's whole job on group-commit messages:
// decodePacked (decode, validate, canonical JSON, COPY fields) on 8 AuditEventBatch messages
// of 256 gateway-like events (bench-event.mjs, as append.bench.mjs publishes). CPU by
// process.cpuUsage (all threads), the minimum of ROUNDS rounds of 5 batches: the figure
// least moved by other work on the machine. Needs a built tree (proto and services/audit
// dist/). For an A/B, pass the other built tree's root and alternate runs (a `cp -a` of a
// built worktree works):
//
//   node services/audit/bench/decode.bench.mjs [tree root, default this tree]   (ROUNDS=30)
import { randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { benchEventInit } from './bench-event.mjs';

const root = resolve(process.argv[2] ?? fileURLToPath(new URL('../../..', import.meta.url)));
const load = (path) => import(pathToFileURL(join(root, path)).href);

// Each tree's own builds: the same protobuf-es instance its proto package uses.
const { decodePacked, packPayloads, PayloadKind } = await load('services/audit/dist/log/event-decoding.js');
const { AuditEventBatchSchema, AuditEventSchema } = await load('proto/dist/index.js');
const { create, toBinary } = await load('proto/node_modules/@bufbuild/protobuf/dist/esm/index.js');

const MESSAGES = 8;
const PER_MESSAGE = 256;
const ROUNDS = Number(process.env.ROUNDS ?? 30);

const payloads = Array.from({ length: MESSAGES }, (_, m) => ({
  kind: PayloadKind.Batch,
  data: toBinary(
    AuditEventBatchSchema,
    create(AuditEventBatchSchema, {
      batchId: randomUUID(),
      events: Array.from({ length: PER_MESSAGE }, (_, i) =>
        create(AuditEventSchema, benchEventInit(m * PER_MESSAGE + i)),
      ),
    }),
  ),
}));

let best = Infinity;
for (let round = 0; round < ROUNDS; round += 1) {
  const start = process.cpuUsage();
  for (let k = 0; k < 5; k += 1) {
    const batch = decodePacked(packPayloads(payloads));
    if (batch.eventIds.length !== MESSAGES * PER_MESSAGE || batch.failures.length > 0)
      throw new Error('decodePacked refused the bench events');
  }
  const used = process.cpuUsage(start);
  best = Math.min(best, (used.user + used.system) / (5 * MESSAGES * PER_MESSAGE));
}
console.log(`${root}: decodePacked ${best.toFixed(2)} µs CPU per event (min of ${ROUNDS} rounds of 5)`);
