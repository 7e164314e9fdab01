// node services/personal-server/bench/object-copy.bench.mjs (from the repository root)
//
// ns of CPU per copy (process.cpuUsage, 500,000 copies, 5 rounds) of the two objects
// RecordsService.query used to spread per query, against the same objects written out:
// the key's owner, `{ ...grant, connectionId }` (a QueryGrant, records.repository.ts: 12 fields)
// and the answer, `{ ...page, syncedAt }`. A spread followed by another property misses V8's
// fast object-clone path (docs/perf/README.md, "The shard's query CPU", fifth session).
import { randomBytes, randomUUID } from 'node:crypto';

const COPIES = 500_000;
const ROUNDS = 5;

/** Shaped like the page statement's grant (QueryGrant), one per connection. */
const grant = () => ({
  id: randomUUID(),
  grantUserId: randomUUID(),
  scopes: ['media.playlist'],
  seal: randomBytes(32),
  consentNonce: randomUUID(),
  state: 'active',
  types: ['media.playlist'],
  syncedAt: new Date(),
  personalServerId: randomUUID(),
  userId: randomUUID(),
  dataKeyId: randomUUID(),
  recordsVersion: 3,
});
const grants = Array.from({ length: 1000 }, grant);
const pages = Array.from({ length: 1000 }, () => ({ recordsJson: randomBytes(64), nextCursor: 'c'.repeat(40) }));

let sink;
/** ns of CPU per call of `copy`, after a warm-up. */
function measure(/** @type {(i: number) => object} */ copy) {
  for (let i = 0; i < COPIES / 10; i += 1) sink = copy(i);
  const start = process.cpuUsage();
  for (let i = 0; i < COPIES; i += 1) sink = copy(i);
  const used = process.cpuUsage(start);
  return (((used.user + used.system) * 1000) / COPIES).toFixed(0);
}

const cases = {
  'owner spread': (/** @type {number} */ i) => ({ ...grants[i % 1000], connectionId: 'c' }),
  'owner written': (/** @type {number} */ i) => {
    const g = grants[i % 1000];
    return { personalServerId: g.personalServerId, connectionId: 'c', userId: g.userId, dataKeyId: g.dataKeyId };
  },
  'page spread': (/** @type {number} */ i) => ({ ...pages[i % 1000], syncedAt: null }),
  'page written': (/** @type {number} */ i) => {
    const { recordsJson, nextCursor } = pages[i % 1000];
    return { recordsJson, nextCursor, syncedAt: null };
  },
};
for (let round = 0; round < ROUNDS; round += 1) {
  const figures = Object.entries(cases).map(([name, copy]) => `${name} ${measure(copy)}`);
  console.log(`ns per copy: ${figures.join(' | ')}${sink ? '' : ' '}`);
}
