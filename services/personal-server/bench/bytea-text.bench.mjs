// node services/personal-server/bench/bytea-text.bench.mjs (from the repository root)
//
// µs of CPU per 330-byte ciphertext for what node-pg does to a text bytea: the DataRow value's
// UTF-8 decode (pg-protocol) and its hex parse (pg-types), as process.cpuUsage counts it.
import { randomBytes } from 'node:crypto';

import pg from 'pg';
const parse = pg.types.getTypeParser(pg.types.builtins.BYTEA, 'text');
const wires = Array.from({ length: 1000 }, () => Buffer.from(`\\x${randomBytes(330).toString('hex')}`, 'utf8'));
let sink = 0;
const round = () => {
  const start = process.cpuUsage();
  for (let i = 0; i < 200; i += 1) for (const w of wires) sink += parse(w.toString('utf8', 0, w.length)).length;
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 200_000;
};
round();
const results = Array.from({ length: 5 }, round).map((v) => v.toFixed(2));
console.log(`µs per ciphertext, 5 rounds: ${results.join(' ')} (${sink > 0})`);
