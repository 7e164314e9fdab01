// CPU per event of the audit decoder thread's whole job on group-commit messages:
// decodePacked (decode, validate, canonical JSON, COPY fields) on 8 AuditEventBatch messages
// of 256 gateway-like events (bench-event.mjs, as append.bench.mjs publishes); then of the
// writer thread's work on what it decoded: the chain and tree (LogWriter.appendCanonical,
// as prepare() calls it) and the batch's COPY encoding (the columns LogRepository.append
// copies). CPU by
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
const { decodePacked, packPayloads, PayloadKind, SEARCH_COPY_COLUMNS } = await load(
  'services/audit/dist/log/event-decoding.js',
);
const { AuditEventBatchSchema, AuditEventSchema } = await load('proto/dist/index.js');
const { create, toBinary } = await load('proto/node_modules/@bufbuild/protobuf/dist/esm/index.js');
const { LogWriter } = await load('libs/merkle-log/dist/index.js');
const { encodeCopyBinary } = await load('libs/database/dist/index.js');

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

// The writer's part, on one decoded batch: LogRepository's COPY columns (seq, the nine
// encoded search columns, entry, leaf_hash).
const decoded = decodePacked(packPayloads(payloads));
const events = decoded.eventIds.length;
const COPY_TYPES = ['int8', { fields: SEARCH_COPY_COLUMNS.length }, 'bytea', 'bytea'];
let bestChain = Infinity;
let bestCopy = Infinity;
for (let round = 0; round < ROUNDS; round += 1) {
  const writer = LogWriter.empty();
  let start = process.cpuUsage();
  const batches = [];
  for (let k = 0; k < 5; k += 1) {
    const rows = [];
    for (let i = 0; i < events; i += 1) {
      const end = decoded.canonicalEnds[i];
      const canonical = decoded.canonicalEvents.subarray(decoded.canonicalEnds[i - 1] ?? 0, end);
      const search = decoded.searchFields.subarray(decoded.searchFieldEnds[i - 1] ?? 0, decoded.searchFieldEnds[i]);
      const appended = writer.appendCanonical(decoded.eventIds[i], canonical, () => undefined);
      rows.push([appended.index, search, appended.canonicalBytes, appended.leafHash]);
    }
    batches.push(rows);
  }
  let used = process.cpuUsage(start);
  bestChain = Math.min(bestChain, (used.user + used.system) / (5 * events));
  start = process.cpuUsage();
  for (const rows of batches) encodeCopyBinary(COPY_TYPES, rows);
  used = process.cpuUsage(start);
  bestCopy = Math.min(bestCopy, (used.user + used.system) / (5 * events));
}
console.log(
  `${root}: writer appendCanonical ${bestChain.toFixed(2)}, COPY encoding ${bestCopy.toFixed(2)} µs CPU per event (min of ${ROUNDS} rounds of 5)`,
);
