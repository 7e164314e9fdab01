import { TestClock } from '@context-gateway/clock/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { obtainTokens } from './obtain-tokens.js';
import { type RunningSimulator, startSimulator } from './server.js';

/** The Spotify simulator's Web API as a sync client sees it, over HTTP. */

interface Paging<T> {
  href: string;
  items: T[];
  limit: number;
  next: string | null;
  offset: number;
  previous: string | null;
  total: number;
}

describe('Spotify Web API', () => {
  let sim: RunningSimulator;
  let token: string;
  const login = 'listener';
  const get = (path: string, t = token) =>
    fetch(path.startsWith('http') ? path : `${sim.url}${path}`, { headers: { authorization: `Bearer ${t}` } });
  const json = async <T>(path: string) => {
    const res = await get(path);
    expect(res.status).toBe(200);
    return (await res.json()) as T;
  };

  beforeAll(async () => {
    sim = await startSimulator({ provider: 'spotify' });
    await sim.control.createAccount({
      login,
      counts: { playlists: 12, playlist_tracks: 75, tracks: 120, recently_played: 130 },
    });
    token = (
      await obtainTokens(sim, login, [
        'user-read-private',
        'playlist-read-private',
        'user-library-read',
        'user-read-recently-played',
      ])
    ).access_token;
  });
  afterAll(async () => {
    await sim.stop();
  });

  it('playlists and each playlist’s tracks page with offset/limit and `next` to the end', async () => {
    const playlists: Array<{ id: string; snapshot_id: string; tracks: { total: number; href: string } }> = [];
    let url: string | null = '/v1/me/playlists?limit=5';
    while (url) {
      const page: Paging<(typeof playlists)[number]> = await json(url);
      expect(page.total).toBe(12);
      playlists.push(...page.items);
      url = page.next;
    }
    expect(playlists).toHaveLength(12);
    const first = playlists[0]!;
    expect(first.tracks.total).toBe(75);
    const tracks: Array<{
      added_at: string;
      added_by: { id: string };
      is_local: boolean;
      track: { id: string; uri: string; artists: Array<{ name: string }> };
    }> = [];
    let next: string | null = first.tracks.href + '?limit=50';
    while (next) {
      const page: Paging<(typeof tracks)[number]> = await json(next);
      tracks.push(...page.items);
      next = page.next;
    }
    expect(tracks).toHaveLength(75);
    expect(tracks[0]!.track.uri).toBe(`spotify:track:${tracks[0]!.track.id}`);
    expect(tracks[0]!.track.artists[0]!.name).toBeTruthy();
    expect(tracks[0]).toMatchObject({ added_by: { id: login }, is_local: false });
    expect(new Set(tracks.map((t) => t.track.id)).size).toBe(75);
  });

  it('refuses a limit over 50 in Spotify’s error shape', async () => {
    const res = await get('/v1/me/tracks?limit=51');
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: { status: 400, message: 'Invalid limit' } });
  });

  it('saved tracks come newest first; a removed one is gone and the total drops', async () => {
    const page: Paging<{ added_at: string; track: { id: string } }> = await json('/v1/me/tracks?limit=50');
    expect(page.total).toBe(120);
    const times = page.items.map((i) => Date.parse(i.added_at));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    const removed = page.items[3]!.track.id;
    await sim.control.deleteItem(login, 'tracks', removed);
    const all: string[] = [];
    let url: string | null = '/v1/me/tracks?limit=50';
    while (url) {
      const p: Paging<{ track: { id: string } }> = await json(url);
      expect(p.total).toBe(119);
      all.push(...p.items.map((i) => i.track.id));
      url = p.next;
    }
    expect(all).toHaveLength(119);
    expect(all).not.toContain(removed);
  });

  it('recently played walks back with `before`, then `after` returns exactly the new plays', async () => {
    type Played = { played_at: string; track: { id: string } };
    type Cursored = {
      items: Played[];
      next: string | null;
      cursors: { after: string; before: string } | null;
      limit: number;
    };
    const seen: Played[] = [];
    let url: string | null = '/v1/me/player/recently-played?limit=50';
    let newest: string | undefined;
    while (url) {
      const page: Cursored = await json(url);
      newest ??= page.cursors?.after;
      seen.push(...page.items);
      url = page.next;
    }
    expect(seen).toHaveLength(130);
    const times = seen.map((p) => Date.parse(p.played_at));
    expect(new Set(times).size).toBe(130);
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    expect(Number(newest)).toBe(times[0]);

    // Back to back, possibly within one millisecond: each is a play of its own.
    for (let i = 0; i < 3; i++) await sim.control.addItem(login, 'recently_played');
    const fresh: Cursored = await json(`/v1/me/player/recently-played?limit=50&after=${newest}`);
    expect(fresh.items).toHaveLength(3);
    expect(fresh.items.every((p) => Date.parse(p.played_at) > Number(newest))).toBe(true);
    expect(fresh.next).toBeNull();

    const both = await get(`/v1/me/player/recently-played?after=1&before=2`);
    expect(both.status).toBe(400);
  });

  it('refuses an endpoint the token’s scopes do not cover', async () => {
    const narrow = (await obtainTokens(sim, login, ['user-read-private'])).access_token;
    const res = await get('/v1/me/tracks', narrow);
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: { status: 403, message: 'Insufficient client scope' } });
  });

  it('a playlist changed at the source gets a new snapshot_id', async () => {
    const page: Paging<{ id: string; snapshot_id: string; name: string }> = await json('/v1/me/playlists?limit=1');
    const before = page.items[0]!;
    await sim.control.updateItem(login, 'playlists', before.id, { name: 'Renamed' });
    const after: Paging<{ id: string; snapshot_id: string; name: string }> = await json('/v1/me/playlists?limit=1');
    expect(after.items[0]).toMatchObject({ id: before.id, name: 'Renamed' });
    expect(after.items[0]!.snapshot_id).not.toBe(before.snapshot_id);
  });

  it('tracks added to and removed from a playlist at the source show in its entries', async () => {
    const page: Paging<{ id: string; snapshot_id: string; tracks: { total: number } }> = await json(
      '/v1/me/playlists?limit=1&offset=2',
    );
    const playlist = page.items[0]!;
    const added = await sim.control.addPlaylistTracks(login, playlist.id, 3);
    expect(added.total).toBe(playlist.tracks.total + 3);
    const removed = (await json<Paging<{ track: { id: string } }>>(`/v1/playlists/${playlist.id}/tracks?limit=1`))
      .items[0]!.track.id;
    expect((await sim.control.removePlaylistTrack(login, playlist.id, removed)).total).toBe(playlist.tracks.total + 2);
    const ids: string[] = [];
    let url: string | null = `/v1/playlists/${playlist.id}/items?limit=50`;
    while (url) {
      const p: Paging<{ track: { id: string }; item: { id: string } }> = await json(url);
      ids.push(...p.items.map((i) => i.item.id));
      url = p.next;
    }
    expect(ids.slice(-3)).toEqual(added.added);
    expect(ids).not.toContain(removed);
    const after: Paging<{ id: string; snapshot_id: string }> = await json('/v1/me/playlists?limit=1&offset=2');
    expect(after.items[0]!.snapshot_id).not.toBe(playlist.snapshot_id);
  });

  it('answers If-None-Match with the current ETag by 304, and a changed list with a new ETag', async () => {
    const first = await get('/v1/me/tracks?limit=10');
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^".+"$/);
    const same = await fetch(`${sim.url}/v1/me/tracks?limit=10`, {
      headers: { authorization: `Bearer ${token}`, 'if-none-match': etag },
    });
    expect(same.status).toBe(304);
    expect(await same.text()).toBe('');
    await sim.control.addItem(login, 'tracks');
    const changed = await fetch(`${sim.url}/v1/me/tracks?limit=10`, {
      headers: { authorization: `Bearer ${token}`, 'if-none-match': etag },
    });
    expect(changed.status).toBe(200);
    expect(changed.headers.get('etag')).not.toBe(etag);
  });

  it('a storm answers 429 with Retry-After in Spotify’s shape', async () => {
    await sim.control.startStorm({ retryAfterSeconds: 3 });
    try {
      const res = await get('/v1/me');
      expect(res.status).toBe(429);
      expect(res.headers.get('retry-after')).toBe('3');
      expect(await res.json()).toEqual({ error: { status: 429, message: 'API rate limit exceeded' } });
    } finally {
      await sim.control.stopStorm();
    }
    expect((await get('/v1/me')).status).toBe(200);
  });

  it('answers 401 for a missing or unknown token in Spotify’s shape', async () => {
    const none = await fetch(`${sim.url}/v1/me`);
    expect(await none.json()).toEqual({ error: { status: 401, message: 'No token provided' } });
    const bad = await get('/v1/me', 'BQnope');
    expect(bad.status).toBe(401);
    expect(await bad.json()).toEqual({ error: { status: 401, message: 'Invalid access token' } });
  });
});

describe('Spotify simulator plays added at one instant', () => {
  it('are each a play of their own, 1 ms apart, later than every play before them', async () => {
    // The clock does not move: every play is added at the same millisecond.
    const clock = new TestClock();
    const sim = await startSimulator({ provider: 'spotify', clock });
    try {
      await sim.control.createAccount({ login: 'frozen', counts: { recently_played: 4 } });
      const seeded = (await sim.control.list<{ id: string }>('frozen', 'recently_played')).items;
      for (let i = 0; i < 3; i++) await sim.control.addItem('frozen', 'recently_played');
      const plays = (await sim.control.list<{ id: string; played_at: string }>('frozen', 'recently_played')).items;
      expect(plays).toHaveLength(7);
      const added = plays.filter((p) => !seeded.some((s) => s.id === p.id)).map((p) => Number(p.id));
      const start = Math.max(clock.now(), ...seeded.map((p) => Number(p.id) + 1));
      expect(added.sort((a, b) => a - b)).toEqual([start, start + 1, start + 2]);
      for (const p of plays) expect(Date.parse(p.played_at)).toBe(Number(p.id));
    } finally {
      await sim.stop();
    }
  });
});
