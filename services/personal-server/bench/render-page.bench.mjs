// The shard's page rendering alone: RecordsService#render over one page of 20 real
// ciphertexts (one a tombstone), as the query path calls it (key already open), from each
// checkout's dist/ in turn, so two builds are compared in one process on the same input.
//
//   node services/personal-server/bench/render-page.bench.mjs <checkout> [<checkout> …]
//
// Prints CPU µs per page (process.cpuUsage: the process's threads, GC included) per round,
// min and median; the checkouts alternate within each round. The pages must be byte for
// byte the same, or it stops. ROUNDS=<n> (default 7).
//
// Then libs/crypto's DataKeyCache#get as the query path calls it (RecordKeys#open): one
// cached key, each get with a fresh context object of the same owner; CPU µs per get over
// 200,000 gets, CACHE_ROUNDS=<n> rounds (default 3), the checkouts alternating.
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';

const roots = process.argv.slice(2).map((root) => resolve(root));
if (roots.length === 0) {
  console.error('usage: render-page.bench.mjs <checkout> [<checkout> …] (each built: pnpm build)');
  process.exit(1);
}
const builds = await Promise.all(
  roots.map(async (root) => ({
    root,
    service: await import(`${root}/services/personal-server/dist/records/records.service.js`),
    aad: await import(`${root}/services/personal-server/dist/records/record-aad.js`),
    crypto: await import(`${root}/libs/crypto/dist/index.js`),
  })),
);
const key = builds[0].crypto.DataKey.generate();
const owner = {
  personalServerId: randomUUID(),
  connectionId: randomUUID(),
  userId: randomUUID(),
  dataKeyId: randomUUID(),
};
// The bench:query page: media.playlist bodies of ~300 bytes, times as Postgres formats them.
const records = Array.from({ length: 20 }, (_, r) => {
  const id = randomUUID();
  const type = 'media.playlist';
  const body = Buffer.from(
    JSON.stringify({
      source: 'spotify',
      id: `pl-${r}`,
      name: `Playlist number ${r} of user 3`,
      description: 'Songs for a long drive through the mountains',
      public: true,
      itemCount: r,
      url: `https://open.spotify.example/playlist/${r}`,
    }),
  );
  return {
    id,
    type,
    externalId: `x-${2 * r}`,
    ciphertext: key.encrypt(body, builds[0].aad.recordAad(owner.personalServerId, owner.connectionId, id, type)),
    sourceUpdatedAt: '2026-12-07T07:41:12.100Z',
    updatedAt: '2026-12-07T07:41:12.123Z',
    deleted: r === 7,
    version: String(2 * r + 1),
  };
});
const pages = [];
for (const build of builds) {
  // render is private; it reads nothing of the service when the key comes opened.
  const self = Object.create(build.service.RecordsService.prototype);
  build.render = () => build.service.RecordsService.prototype.render.call(self, records, 20, owner, undefined, key);
  pages.push((await build.render()).recordsJson);
}
if (pages.some((page) => !page.equals(pages[0]))) throw new Error('the checkouts render different pages');
console.log(`one page of ${records.length} records, ${pages[0].length} bytes, the same from every checkout`);

const rounds = Number(process.env.ROUNDS ?? 7);
const perPage = new Map(builds.map((build) => [build.root, []]));
for (let round = 0; round < rounds; round += 1) {
  for (const build of builds) {
    for (let i = 0; i < 1_000; i += 1) await build.render();
    const pagesTimed = 5_000;
    const start = process.cpuUsage();
    for (let i = 0; i < pagesTimed; i += 1) await build.render();
    const used = process.cpuUsage(start);
    perPage.get(build.root).push(+((used.user + used.system) / pagesTimed).toFixed(1));
  }
}
for (const [root, values] of perPage) {
  const sorted = [...values].sort((a, b) => a - b);
  console.log(`${root}: µs/page min ${sorted[0]}, median ${sorted[sorted.length >> 1]} (${values.join(' ')})`);
}

// The data key cache: the same owner in a new object on every get, as each query opens its key.
const cacheRounds = Number(process.env.CACHE_ROUNDS ?? 3);
const perGet = new Map(builds.map((build) => [build.root, []]));
// RecordKeys' wrapContext: a new object per query.
const context = () => ({
  purpose: 'ps.records',
  personalServer: owner.personalServerId,
  connection: owner.connectionId,
  user: owner.userId,
});
for (const build of builds) {
  build.cache = new build.crypto.DataKeyCache();
  build.wrapped = new build.crypto.WrappedKey('bench', 1, Buffer.alloc(60, 7));
  const cached = await build.cache.get(build.wrapped, context(), () => Promise.resolve(key));
  if (cached !== key) throw new Error(`${build.root}: the cache did not give the loaded key`);
}
const noLoad = () => Promise.reject(new Error('the bench key left the cache'));
for (let round = 0; round < cacheRounds; round += 1) {
  for (const build of builds) {
    for (let i = 0; i < 20_000; i += 1) await build.cache.get(build.wrapped, context(), noLoad);
    const gets = 200_000;
    const start = process.cpuUsage();
    for (let i = 0; i < gets; i += 1) await build.cache.get(build.wrapped, context(), noLoad);
    const used = process.cpuUsage(start);
    perGet.get(build.root).push(+((used.user + used.system) / gets).toFixed(2));
  }
}
for (const [root, values] of perGet) {
  const sorted = [...values].sort((a, b) => a - b);
  console.log(`${root}: µs/cache get min ${sorted[0]}, median ${sorted[sorted.length >> 1]} (${values.join(' ')})`);
}
