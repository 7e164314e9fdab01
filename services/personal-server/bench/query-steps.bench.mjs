// Three steps of the shard's records query, each as the query path calls it, from each
// checkout's dist/ in turn (docs/perf/README.md, "The shard's query: the seal memo, the AAD
// prefix and the reply around the page", seventh session):
//
// - `seal check`: grantSealMatches on a memo hit, the grant row read back afresh (new arrays);
// - `aad page`: recordAadScratch for the page's connection (its key passed as the memo where the
//   checkout takes one) and 20 record ids written;
// - `page + reply`: writeParts of a 20-record page's 41 parts (with QUERY_REPLY_ROOM where the
//   checkout has it), then encodeQueryReply.
//
//   node services/personal-server/bench/query-steps.bench.mjs <checkout> [<checkout> …]
//
// Each checkout built (pnpm build). Prints CPU µs per step (process.cpuUsage over ROUNDS rounds
// of 50,000 to 100,000 calls, default 5 rounds; the checkouts alternate, order reversed every
// other round), min and median. The replies must be byte for byte the same, or it stops.
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';

const roots = process.argv.slice(2).map((root) => resolve(root));
if (roots.length === 0) {
  console.error('usage: query-steps.bench.mjs <checkout> [<checkout> …] (each built: pnpm build)');
  process.exit(1);
}
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const CONNECTIONS = 100;
const owners = Array.from({ length: CONNECTIONS }, () => ({ ps: randomUUID(), connection: randomUUID() }));
const ids = Array.from({ length: 20 }, () => randomUUID());
const grantOf = (i) => ({
  id: randomUUID(),
  connectionId: owners[i].connection,
  orgId: randomUUID(),
  applicationId: randomUUID(),
  userId: randomUUID(),
  scopes: ['spotify:read:playlists'],
  types: ['media.playlist'],
  consentNonce: randomUUID(),
});
// The page's text around each body as render makes it, and the bodies (decrypted already).
const parts = ids.flatMap((id, r) => [
  `${r === 0 ? '[' : '},'}{"id":"${id}","type":"media.playlist","externalId":"x-${r}","updatedAt":"2026-12-07T07:41:12.123Z","sourceUpdatedAt":"2026-12-07T07:41:12.100Z","deleted":false,"data":`,
  Buffer.alloc(260, 0x61),
]);
parts.push('}]');
const size = parts.reduce((sum, part) => sum + (typeof part === 'string' ? Buffer.byteLength(part) : part.length), 0);
const syncedAt = new Date();

const builds = await Promise.all(
  roots.map(async (root) => {
    const dist = `${root}/services/personal-server/dist`;
    const build = {
      root,
      aad: await import(`${dist}/records/record-aad.js`),
      seal: await import(`${dist}/grants/grant-seal.js`),
      pageBytes: await import(`${dist}/records/page-bytes.js`),
      reply: await import(`${dist}/records/query-reply.js`),
      crypto: await import(`${root}/libs/crypto/dist/index.js`),
    };
    build.keys = owners.map(() => build.crypto.DataKey.generate());
    build.grants = owners.map((_, i) => grantOf(i));
    build.seals = build.grants.map((grant, i) => build.seal.sealGrant(build.keys[i], grant));
    return build;
  }),
);

const steps = {
  'seal check': [
    100_000,
    (build, i) => {
      const k = i % CONNECTIONS;
      const grant = build.grants[k];
      const row = { ...grant, scopes: [...grant.scopes], types: [...grant.types] };
      if (!build.seal.grantSealMatches(build.keys[k], row, build.seals[k])) throw new Error('the seal did not match');
    },
  ],
  'aad page': [
    100_000,
    (build, i) => {
      const { ps, connection } = owners[i % CONNECTIONS];
      const aad = build.aad.recordAadScratch(ps, connection, build.keys[i % CONNECTIONS]);
      for (const id of ids) aad(id, 'media.playlist');
    },
  ],
  'page + reply': [
    50_000,
    (build) =>
      build.reply.encodeQueryReply({
        recordsJson: build.pageBytes.writeParts(parts, size, build.reply.QUERY_REPLY_ROOM),
        nextCursor: 'djE6MTIzNDU',
        syncedAt,
      }),
  ],
};

const replies = builds.map((build) => Buffer.from(steps['page + reply'][1](build).bytes));
if (replies.some((reply) => !reply.equals(replies[0]))) throw new Error('the checkouts reply differently');
console.log(`page ${size} bytes, reply ${replies[0].length} bytes, the same from every checkout`);

const results = new Map();
for (let round = 0; round < ROUNDS; round += 1) {
  for (const build of round % 2 === 0 ? builds : [...builds].reverse()) {
    for (const [name, [calls, step]] of Object.entries(steps)) {
      for (let i = 0; i < calls / 5; i += 1) step(build, i);
      const start = process.cpuUsage();
      for (let i = 0; i < calls; i += 1) step(build, i);
      const used = process.cpuUsage(start);
      const key = `${name}  ${build.root}`;
      results.set(key, [...(results.get(key) ?? []), +((used.user + used.system) / calls).toFixed(2)]);
    }
  }
}
for (const [key, values] of [...results].sort(([a], [b]) => a.localeCompare(b))) {
  const sorted = [...values].sort((a, b) => a - b);
  console.log(`${key}: µs min ${sorted[0]}, median ${sorted[sorted.length >> 1]} (${values.join(' ')})`);
}
