/**
 * How fast the simulators seed and serve, so a sync benchmark knows the source is not its
 * bottleneck: `pnpm --filter @context-gateway/source-simulators bench [items]`.
 * Prints figures; asserts nothing.
 */
import { obtainTokens } from './obtain-tokens.js';
import { type RunningSimulator, startSimulator } from './server.js';

const N = Number(process.argv[2] ?? 100_000);

async function walk(label: string, token: string, urls: string[], concurrency: number) {
  const started = performance.now();
  let records = 0;
  let pages = 0;
  const queue = [...urls];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let url = queue.shift(); url; url = queue.shift()) {
        const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
        const body = (await res.json()) as unknown[] | { items: unknown[] };
        records += Array.isArray(body) ? body.length : body.items.length;
        pages++;
      }
    }),
  );
  const s = (performance.now() - started) / 1000;
  console.log(
    `${label.padEnd(44)} ${String(records).padStart(7)} records  ${String(pages).padStart(5)} pages  ${s.toFixed(2).padStart(6)} s  ${Math.round(
      records / s,
    )
      .toString()
      .padStart(7)} records/s`,
  );
}

async function seed(label: string, sim: RunningSimulator, login: string, counts: Record<string, number>) {
  const r = await sim.control.seed(login, counts);
  console.log(`${label.padEnd(44)} ${JSON.stringify(r.counts)} in ${r.seedMs} ms`);
}

const github = await startSimulator({ provider: 'github', rateLimit: 1_000_000 });
const spotify = await startSimulator({ provider: 'spotify' });
const demo = await startSimulator({ provider: 'demo' });
try {
  console.log(`source simulators, ${N} items per collection (node ${process.version})`);
  await seed('seed github repos+starred+issues', github, 'octocat', { repos: N, starred: N, issues: N });
  await seed('seed spotify saved tracks + plays', spotify, 'wizzler', { tracks: N, recently_played: N, playlists: 10 });
  await seed('seed demo items', demo, 'alice', { items: N });

  const gh = (await obtainTokens(github, 'octocat', ['repo', 'read:user'])).access_token;
  const pages = Math.ceil(N / 100);
  const ghUrls = (path: string) =>
    Array.from(
      { length: pages },
      (_, i) => `${github.url}${path}${path.includes('?') ? '&' : '?'}per_page=100&page=${i + 1}`,
    );
  await walk('github /user/repos per_page=100, 1 at a time', gh, ghUrls('/user/repos'), 1);
  await walk('github /user/repos per_page=100, 4 in flight', gh, ghUrls('/user/repos'), 4);
  await walk('github /issues?state=all per_page=100, 4 in flight', gh, ghUrls('/issues?state=all'), 4);

  const sp = (await obtainTokens(spotify, 'wizzler', ['user-library-read'])).access_token;
  const spUrls = Array.from(
    { length: Math.ceil(N / 50) },
    (_, i) => `${spotify.url}/v1/me/tracks?limit=50&offset=${i * 50}`,
  );
  await walk('spotify /v1/me/tracks limit=50, 4 in flight', sp, spUrls, 4);

  // Cursor pagination is sequential by nature.
  const dm = (await obtainTokens(demo, 'alice', ['notes.read'])).access_token;
  const started = performance.now();
  let cursor: string | null = null;
  let records = 0;
  do {
    const res = await fetch(`${demo.url}/api/items?limit=100${cursor ? `&cursor=${cursor}` : ''}`, {
      headers: { authorization: `Bearer ${dm}` },
    });
    const body = (await res.json()) as { items: unknown[]; nextCursor: string | null };
    records += body.items.length;
    cursor = body.nextCursor;
  } while (cursor);
  const s = (performance.now() - started) / 1000;
  console.log(
    `${'demo /api/items limit=100, cursor walk'.padEnd(44)} ${String(records).padStart(7)} records  ${s.toFixed(2).padStart(13)} s  ${Math.round(
      records / s,
    )
      .toString()
      .padStart(7)} records/s`,
  );
} finally {
  await Promise.all([github.stop(), spotify.stop(), demo.stop()]);
}
