import { validateRecord } from '@context-gateway/record-catalog';
import { type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { SpotifyConnector } from './spotify.connector.js';
import { MemoryStore } from './testing/memory-store.js';
import { simulatorTokens } from './testing/simulator-oauth.js';

/**
 * The cases real Spotify accounts broke, each against the simulator with the source's real
 * behaviour switched on: a followed playlist answering 403, `null` in /me/playlists, both
 * generations of field names, and what a play's duration means.
 */
const SCOPES = 'user-read-private user-read-email playlist-read-private user-library-read user-read-recently-played';
const COUNTS = { playlists: 5, playlist_tracks: 7, tracks: 9, recently_played: 11 };

describe('SpotifyConnector on real-shaped accounts', () => {
  let sim: RunningSimulator;
  const connector = new SpotifyConnector();
  const http = { maxWaitMs: 5_000, backoffBaseMs: 20 };

  beforeAll(async () => {
    sim = await startSimulator({ provider: 'spotify' });
  }, 30_000);
  afterAll(async () => {
    await sim?.stop();
  }, 30_000);

  async function account(login: string, quirks: Parameters<RunningSimulator['control']['setQuirks']>[1]) {
    await sim.control.createAccount({ login, counts: COUNTS });
    await sim.control.setQuirks(login, quirks);
    const tokens = await simulatorTokens(sim, login, SCOPES);
    const playlists = (await sim.control.list<{ id: string }>(login, 'playlists')).items;
    return { tokens, playlists };
  }

  it('a playlist answering 403 and a null list entry are the only two skips; everything else is stored', async () => {
    const { playlists } = await account('follower', {});
    const refused = playlists[1]!.id;
    await sim.control.setQuirks('follower', { forbiddenPlaylists: [refused], nullPlaylistEntries: [2] });
    const tokens = await simulatorTokens(sim, 'follower', SCOPES);
    const store = new MemoryStore();
    const cursor = await connector.sync(
      { baseUrl: `${sim.url}/v1`, tokens, emit: store.apply, skip: store.skip, http },
      null,
    );

    expect(store.skipped).toHaveLength(2);
    expect(store.skipped).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'forbidden', resource: `/playlists/${refused}/items` }),
        expect.objectContaining({ kind: 'malformed', resource: expect.stringContaining('/me/playlists[2]') }),
      ]),
    );
    expect(store.of('media.playlist')).toHaveLength(5);
    // Every playlist's items but the refused one's.
    expect(store.of('media.playlist_item')).toHaveLength(4 * 7);
    expect(store.of('media.playlist_item').some((r) => r.data.playlistId === refused)).toBe(false);
    expect(store.of('media.track')).toHaveLength(9);
    expect(store.of('media.play_event')).toHaveLength(11);
    // The refused playlist is asked again next time (no snapshot recorded for it).
    expect(cursor.playlistItems?.[refused]).toBeUndefined();
  }, 30_000);

  it.each(['old', 'new', 'both'] as const)(
    'reads playlists and entries with %s field names',
    async (fields) => {
      const { tokens, playlists } = await account(`fields-${fields}`, { playlistFields: fields });
      const store = new MemoryStore();
      await connector.sync({ baseUrl: `${sim.url}/v1`, tokens, emit: store.apply, skip: store.skip, http }, null);
      expect(store.skipped).toEqual([]);
      expect(store.of('media.playlist').map((r) => r.data.itemCount)).toEqual(playlists.map(() => 7));
      expect(store.of('media.playlist_item')).toHaveLength(5 * 7);
    },
    30_000,
  );

  it('a play does not claim the track length as time played', async () => {
    const { tokens } = await account('player', {});
    const store = new MemoryStore();
    await connector.sync({ baseUrl: `${sim.url}/v1`, tokens, emit: store.apply, skip: store.skip, http }, null);
    const plays = store.of('media.play_event');
    expect(plays).toHaveLength(11);
    for (const p of plays) expect(p.data.durationMs).toBeUndefined();
    // Saved tracks keep their length: there it is what durationMs means.
    for (const t of store.of('media.track')) expect(t.data.durationMs).toEqual(expect.any(Number));
  }, 30_000);

  it('null fields: a playlist without a name, entries without added_at or track, tracks without ISRC', async () => {
    const { tokens, playlists } = await account('nulls', { nullFields: true });
    const store = new MemoryStore();
    await connector.sync({ baseUrl: `${sim.url}/v1`, tokens, emit: store.apply, skip: store.skip, http }, null);
    for (const r of store.live.values()) expect(() => validateRecord(r.type, r.data)).not.toThrow();
    // Every playlist is stored, its null name as an empty one (the catalog requires a name).
    expect(store.of('media.playlist').map((r) => r.data.name)).toEqual(playlists.map(() => ''));
    // The first entry of each playlist points at nothing: one skip each, its siblings stored.
    expect(store.skipped).toHaveLength(5);
    for (const p of playlists)
      expect(store.skipped).toContainEqual(expect.objectContaining({ resource: `/playlists/${p.id}/items[0]` }));
    const entries = store.of('media.playlist_item');
    expect(entries).toHaveLength(5 * 6);
    for (const e of entries) {
      expect(e.data.addedAt).toBeUndefined();
      expect(e.data.isrc).toBeUndefined();
    }
    expect(store.of('media.track')).toHaveLength(9);
    expect(store.of('media.play_event')).toHaveLength(11);
  }, 30_000);

  it('saved tracks added between pages: nothing is lost, the new one comes with the next run', async () => {
    // 120 saved tracks: three pages of 50, each later page shifted by the one saved meanwhile.
    await sim.control.createAccount({ login: 'shifting', counts: { ...COUNTS, tracks: 120 } });
    await sim.control.setQuirks('shifting', { shiftingPages: 'insert' });
    const tokens = await simulatorTokens(sim, 'shifting', SCOPES);
    const before = (await sim.control.list<{ id: string }>('shifting', 'tracks')).items.map((t) => t.id);
    const store = new MemoryStore();
    const cursor = await connector.sync(
      { baseUrl: `${sim.url}/v1`, tokens, emit: store.apply, skip: store.skip, http },
      null,
    );
    expect(store.skipped).toEqual([]);
    for (const id of before) expect(store.live.has(`media.track/${id}`)).toBe(true);
    const during = (await sim.control.list<{ id: string }>('shifting', 'tracks')).items
      .map((t) => t.id)
      .filter((id) => !before.includes(id));
    expect(during).toHaveLength(1);
    // It was saved after page 1 was read: this run could not see it; the next one does.
    await connector.sync({ baseUrl: `${sim.url}/v1`, tokens, emit: store.apply, skip: store.skip, http }, cursor);
    expect(store.live.has(`media.track/${during[0]}`)).toBe(true);
    for (const id of before) expect(store.live.has(`media.track/${id}`)).toBe(true);
  }, 30_000);

  it('saved tracks removed between pages: no live one is ever tombstoned; the removed ones go by the next run', async () => {
    await sim.control.createAccount({ login: 'unsaving', counts: { ...COUNTS, tracks: 120 } });
    const tokens = await simulatorTokens(sim, 'unsaving', SCOPES);
    const tracks = async () => (await sim.control.list<{ id: string }>('unsaving', 'tracks')).items.map((t) => t.id);
    const store = new MemoryStore();
    const ctx = { baseUrl: `${sim.url}/v1`, tokens, emit: store.apply, skip: store.skip, http };
    let cursor = await connector.sync(ctx, null);
    const before = await tracks();
    // An incremental run during which the newest saved track is unsaved after every first
    // page served: the first walk misses a live track (page 2 shifted), so the run walks again
    // (and the account shifts again under that walk too).
    await sim.control.setQuirks('unsaving', { shiftingPages: 'remove' });
    cursor = await connector.sync(ctx, cursor);
    await sim.control.setQuirks('unsaving', {});
    const after = await tracks();
    expect(before.filter((id) => !after.includes(id)).length).toBeGreaterThanOrEqual(1);
    // Nothing that exists at the source was tombstoned.
    for (const id of after) expect(store.live.has(`media.track/${id}`)).toBe(true);
    // The next run settles what is gone: the store is the source again.
    cursor = await connector.sync(ctx, cursor);
    expect(
      store
        .of('media.track')
        .map((r) => r.externalId)
        .sort(),
    ).toEqual([...after].sort());
    for (const id of before.filter((i) => !after.includes(i)))
      expect(store.tombstones.has(`media.track/${id}`)).toBe(true);
    expect(cursor.saved?.missed).toBeUndefined();
  }, 30_000);

  it('a deleted playlist is tombstoned with its entries in the run that finds it gone', async () => {
    const { tokens, playlists } = await account('pruner', {});
    const store = new MemoryStore();
    const ctx = { baseUrl: `${sim.url}/v1`, tokens, emit: store.apply, skip: store.skip, http };
    let cursor = await connector.sync(ctx, null);
    const gone = playlists[2]!.id;
    const itemsOf = (id: string) => store.of('media.playlist_item').filter((r) => r.data.playlistId === id);
    expect(itemsOf(gone)).toHaveLength(COUNTS.playlist_tracks);
    await sim.control.deleteItem('pruner', 'playlists', gone);
    cursor = await connector.sync(ctx, cursor);
    // Missed by the walk and by the walk made at once to confirm it: gone, with its entries.
    expect(store.tombstones.has(`media.playlist/${gone}`)).toBe(true);
    expect(itemsOf(gone)).toHaveLength(0);
    expect(store.count('media.playlist')).toBe(COUNTS.playlists - 1);
    expect(cursor.playlistItems?.[gone]).toBeUndefined();
  }, 30_000);
});
