import { validateRecord } from '@context-gateway/record-catalog';
import { type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import type { AccessTokenSource } from './connector.js';
import { SpotifyConnector, type SpotifyCursor } from './spotify.connector.js';
import { MemoryStore } from './testing/memory-store.js';
import { simulatorTokens } from './testing/simulator-oauth.js';

/** The Spotify connector against the Spotify simulator over HTTP (paging objects, snapshots, cursors, 429). */

describe('SpotifyConnector against the simulator', () => {
  let sim: RunningSimulator;
  let tokens: AccessTokenSource & { refreshes: number };
  let baseUrl: string;
  const connector = new SpotifyConnector();
  const store = new MemoryStore();
  let cursor: SpotifyCursor;
  const login = 'listener';
  const http = { maxWaitMs: 5_000, backoffBaseMs: 20 };

  beforeAll(async () => {
    sim = await startSimulator({ provider: 'spotify' });
    await sim.control.createAccount({
      login,
      counts: { playlists: 60, playlist_tracks: 130, tracks: 120, recently_played: 140 },
    });
    tokens = await simulatorTokens(
      sim,
      login,
      'user-read-private user-read-email playlist-read-private user-library-read user-read-recently-played',
    );
    baseUrl = `${sim.url}/v1`;
  }, 30_000);
  afterAll(async () => {
    await sim?.stop();
  }, 30_000);

  it('full sync: profile, every playlist page with every item page, saved tracks, plays back through `before`', async () => {
    cursor = await connector.sync({ baseUrl, tokens, emit: store.apply, skip: store.skip, http }, null);
    expect(store.count('profile')).toBe(1);
    expect(store.count('media.playlist')).toBe(60);
    expect(store.count('media.playlist_item')).toBe(60 * 130);
    expect(store.count('media.track')).toBe(120);
    expect(store.count('media.play_event')).toBe(140);
    for (const r of store.live.values()) expect(() => validateRecord(r.type, r.data)).not.toThrow();
  }, 30_000);

  it('incremental: new plays through `after`, saved-track adds and removals, only changed playlists re-read', async () => {
    const saved = (await sim.control.list<{ id: string }>(login, 'tracks')).items;
    await sim.control.deleteItem(login, 'tracks', saved[3]!.id);
    await sim.control.addItem(login, 'tracks', {});
    await sim.control.addItem(login, 'recently_played', {});
    await sim.control.addItem(login, 'recently_played', {});
    const playlists = (await sim.control.list<{ id: string }>(login, 'playlists')).items;
    await sim.control.updateItem(login, 'playlists', playlists[0]!.id, { name: 'Renamed' });
    await sim.control.deleteItem(login, 'playlists', playlists[1]!.id);

    await sim.control.resetCounters();
    const upsertsBefore = store.upserts;
    cursor = await connector.sync({ baseUrl, tokens, emit: store.apply, skip: store.skip, http }, cursor);
    expect(store.count('media.play_event')).toBe(142);
    expect(store.count('media.track')).toBe(120);
    expect(store.tombstones.has(`media.track/${saved[3]!.id}`)).toBe(true);
    expect(store.live.get(`media.playlist/${playlists[0]!.id}`)?.data).toMatchObject({ name: 'Renamed' });
    expect(store.tombstones.has(`media.playlist/${playlists[1]!.id}`)).toBe(true);
    expect(store.count('media.playlist_item')).toBe(59 * 130);
    // Only the renamed playlist's items were read again (3 pages of 50), not all 60 playlists'.
    const counters = await sim.control.counters();
    const itemReads = Object.entries(counters.byRoute)
      .filter(([route]) => route.includes('/v1/playlists/:id/'))
      .reduce((n, [, c]) => n + c, 0);
    expect(itemReads).toBe(3);
    // Unchanged things are listed again (REST has no other way to learn of deletions) but only 2 new plays are fetched.
    expect(store.upserts - upsertsBefore).toBeLessThan(60 + 120 + 130 + 10);
  }, 30_000);

  it('survives a storm of 429 + Retry-After', async () => {
    const fresh = new MemoryStore();
    await sim.control.startStorm({ everyNth: 3, retryAfterSeconds: 1, status: 429, durationSeconds: 3 });
    await connector.sync({ baseUrl, tokens, emit: fresh.apply, skip: fresh.skip, http }, null);
    await sim.control.stopStorm();
    expect(fresh.count('media.playlist_item')).toBe(59 * 130);
    expect(fresh.count('media.play_event')).toBe(142);
  }, 30_000);
});
