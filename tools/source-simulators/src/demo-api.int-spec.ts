import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { obtainTokens } from './obtain-tokens.js';
import { type RunningSimulator, startSimulator } from './server.js';

/** The demo source's API, and what every simulator promises about seeding. */

describe('demo API', () => {
  let sim: RunningSimulator;
  let token: string;
  const get = (path: string, t = token) => fetch(`${sim.url}${path}`, { headers: { authorization: `Bearer ${t}` } });

  beforeAll(async () => {
    sim = await startSimulator({ provider: 'demo' });
    await sim.control.createAccount({ login: 'carol', counts: { items: 230 } });
    token = (await obtainTokens(sim, 'carol', ['profile', 'notes.read'])).access_token;
  });
  afterAll(async () => {
    await sim.stop();
  });

  it('cursor pagination returns every item once, even when items are deleted between pages', async () => {
    const source = (await sim.control.list<{ id: string }>('carol', 'items')).items.map((i) => i.id).sort();
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await get(`/api/items?limit=100${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { items: Array<{ id: string }>; nextCursor: string | null };
      seen.push(...body.items.map((i) => i.id));
      cursor = body.nextCursor;
      pages++;
      // Deleting an item already seen must not make the next page skip one.
      if (pages === 1) await sim.control.deleteItem('carol', 'items', body.items[0]!.id);
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual(source);
    const after = (await (await get('/api/items?limit=100')).json()) as { items: Array<{ id: string }> };
    expect(after.items[0]!.id).toBe(source[1]);
  });

  it('the profile needs the profile scope, items need notes.read', async () => {
    expect(((await (await get('/api/profile')).json()) as { username: string }).username).toBe('carol');
    const profileOnly = (await obtainTokens(sim, 'carol', ['profile'])).access_token;
    const res = await get('/api/items', profileOnly);
    expect(res.status).toBe(403);
    expect(res.headers.get('www-authenticate')).toContain('insufficient_scope');
  });

  it('accepts a personal API key as the bearer token until it is revoked', async () => {
    const { key } = await sim.control.createApiKey('carol');
    const res = await get('/api/items?limit=5', key);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { items: unknown[] }).items).toHaveLength(5);
    await sim.control.revokeApiKey(key);
    expect((await get('/api/items?limit=5', key)).status).toBe(401);
  });

  it('a storm answers 429 with Retry-After for the number of requests asked', async () => {
    await sim.control.startStorm({ everyNth: 3, retryAfterSeconds: 2 });
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await get('/api/profile')).status);
    await sim.control.stopStorm();
    expect(statuses).toEqual([200, 200, 429, 200, 200, 429]);
  });
});

describe('seeding', () => {
  it('the same seed gives the same data on two simulators; another seed does not', async () => {
    const [a, b] = await Promise.all([startSimulator({ provider: 'github' }), startSimulator({ provider: 'github' })]);
    try {
      await a.control.createAccount({ login: 'twin', seed: 's1', counts: { repos: 500, starred: 10, issues: 50 } });
      await b.control.createAccount({ login: 'twin', seed: 's1', counts: { repos: 500, starred: 10, issues: 50 } });
      const [ra, rb] = await Promise.all([a.control.list('twin', 'repos'), b.control.list('twin', 'repos')]);
      expect(ra.total).toBe(500);
      expect(ra).toEqual(rb);
      expect(await a.control.list('twin', 'issues')).toEqual(await b.control.list('twin', 'issues'));
      const reseeded = await b.control.seed('twin', { repos: 500 }, 's2');
      expect(reseeded.counts.repos).toBe(500);
      expect(await b.control.list('twin', 'repos')).not.toEqual(ra);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('seeds 100k items in one call and serves the last page', async () => {
    const sim = await startSimulator({ provider: 'github' });
    try {
      const seeded = await sim.control.seed('octocat', { repos: 100_000, starred: 0, issues: 0 });
      expect(seeded.counts.repos).toBe(100_000);
      const { access_token } = await obtainTokens(sim, 'octocat', ['repo']);
      const last = await fetch(`${sim.url}/user/repos?per_page=100&page=1000`, {
        headers: { authorization: `Bearer ${access_token}` },
      });
      expect(((await last.json()) as unknown[]).length).toBe(100);
      expect(last.headers.get('link')).not.toContain('rel="next"');
    } finally {
      await sim.stop();
    }
    // Generous: the machine is shared; speed is measured by `bench`, not here.
  }, 60_000);
});

describe('control API', () => {
  it('refuses seed counts for collections the source does not have', async () => {
    const sim = await startSimulator({ provider: 'github' });
    try {
      await expect(sim.control.seed('octocat', { repositories: 10 })).rejects.toThrow(
        /400.*unknown count repositories/,
      );
      await expect(sim.control.createAccount({ login: 'x', counts: { repos: -1 } })).rejects.toThrow(/400/);
    } finally {
      await sim.stop();
    }
  });

  it('requires the control token when one is configured', async () => {
    const sim = await startSimulator({ provider: 'demo', controlToken: 'ctl-secret' });
    try {
      const res = await fetch(`${sim.url}/_sim/counters`);
      expect(res.status).toBe(401);
      expect((await sim.control.counters()).apiRequests).toBe(0);
    } finally {
      await sim.stop();
    }
  });
});
