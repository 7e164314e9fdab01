// node services/personal-server/bench/bytea-text.bench.mjs (from the repository root)
//
// µs of CPU per ciphertext (BYTES, 330) for the ways a bytea DataRow value can reach the shard,
// as process.cpuUsage counts it, ROUNDS (5) rounds of PER_ROUND (300,000) values each, the paths
// alternating within a round:
//   text:   the hex text's UTF-8 decode (unpatched pg-protocol) and its hex parse (pg-types'
//           postgres-bytea): what node-pg does to a bytea read as text;
//   copy:   the binary value copied out of the DataRow (the patched parser: allocUnsafe + copy);
//   decode: a UTF-8 decode of the binary value, what an unpatched parser still does to every
//           value if only the raw bytes were kept beside its text.
// Prints min, median and max per path, each round's figure, and the load average.
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';

import pg from 'pg';

const BYTES = Number(process.env.BYTES ?? 330);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const PER_ROUND = Number(process.env.PER_ROUND ?? 300_000);
const WIRES = 1000;
const REPEAT = Math.max(1, Math.round(PER_ROUND / WIRES));

const parse = pg.types.getTypeParser(pg.types.builtins.BYTEA, 'text');
// Each value inside a DataRow-like buffer: the binary bytes, then their hex text.
const values = Array.from({ length: WIRES }, () => randomBytes(BYTES));
const binaryWires = values.map((v) => Buffer.concat([Buffer.alloc(11), v]));
const textWires = values.map((v) => Buffer.concat([Buffer.alloc(11), Buffer.from(`\\x${v.toString('hex')}`, 'utf8')]));

let sink = 0;
const paths = {
  text: () => {
    for (let r = 0; r < REPEAT; r += 1)
      for (const w of textWires) sink += parse(w.toString('utf8', 11, w.length)).length;
  },
  copy: () => {
    for (let r = 0; r < REPEAT; r += 1)
      for (const w of binaryWires) {
        const bytes = Buffer.allocUnsafe(w.length - 11);
        w.copy(bytes, 0, 11, w.length);
        sink += bytes.length;
      }
  },
  decode: () => {
    for (let r = 0; r < REPEAT; r += 1) for (const w of binaryWires) sink += w.toString('utf8', 11, w.length).length;
  },
};
const measure = (path) => {
  const start = process.cpuUsage();
  path();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / (REPEAT * WIRES);
};

for (const path of Object.values(paths)) measure(path); // warm-up
const results = Object.fromEntries(Object.keys(paths).map((name) => [name, []]));
for (let round = 0; round < ROUNDS; round += 1) {
  const names = Object.keys(paths);
  for (const name of round % 2 === 0 ? names : names.reverse()) results[name].push(measure(paths[name]));
}
const median = (sorted) => {
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
console.log(
  `µs of CPU per ${BYTES}-byte value, ${ROUNDS} rounds of ${REPEAT * WIRES}, load ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
for (const [name, figures] of Object.entries(results)) {
  const sorted = [...figures].sort((a, b) => a - b);
  const f = (v) => v.toFixed(2);
  console.log(
    `${name.padEnd(6)} min ${f(sorted[0])} median ${f(median(sorted))} max ${f(sorted.at(-1))} (${figures.map(f).join(' ')})`,
  );
}
console.log(`(${sink > 0})`);
