import { validateRecord } from '@context-gateway/record-catalog';

import { normalizeIsrc, spotifyNormalize } from './spotify.connector.js';

// Objects as Spotify's Web API reference describes them (TrackObject, EpisodeObject,
// PlaylistTrackObject with `is_local`), reduced to the fields the normalizer reads.
type SpUser = Parameters<typeof spotifyNormalize.profile>[0];

const track = {
  id: '4iV5W9uYEdYUVa79Axb7Rh',
  name: 'New Noise',
  type: 'track',
  uri: 'spotify:track:4iV5W9uYEdYUVa79Axb7Rh',
  duration_ms: 301_000,
  is_local: false,
  artists: [{ id: '2BGRfQgtzikz1pzAD0kaEn', name: 'Refused' }],
  album: { id: '2noRn2Aes5aoNVsU6iWThc', name: 'The Shape of Punk to Come' },
  external_ids: { isrc: 'SE-AAA-98-00001' },
};
const episode = {
  id: '512ojhOuo1ktJprKbVcKyQ',
  name: 'Episode 12',
  type: 'episode',
  uri: 'spotify:episode:512ojhOuo1ktJprKbVcKyQ',
  duration_ms: 1_686_230,
  show: { id: '38bS44xjbVVZ3No3ByF1dJ', name: 'A Podcast', publisher: 'Someone' },
};
const local = {
  id: null,
  name: 'demo take 3',
  type: 'track',
  uri: 'spotify:local:Me:Garage:demo+take+3:187',
  duration_ms: 187_000,
  is_local: true,
  artists: [{ name: 'Me' }],
  album: { name: 'Garage' },
  external_ids: {},
};

describe('Spotify objects → catalog v3', () => {
  it('a playlist entry carries a snapshot of a track: artists and album with their ids, length, ISRC', () => {
    const record = spotifyNormalize.playlistItem('pl', 0, { added_at: '2026-01-02T03:04:05Z', item: track });
    expect(record.data).toEqual({
      source: 'spotify',
      playlistId: 'pl',
      trackId: track.id,
      position: 0,
      title: 'New Noise',
      addedAt: '2026-01-02T03:04:05Z',
      itemKind: 'track',
      creators: ['Refused'],
      creatorIds: ['2BGRfQgtzikz1pzAD0kaEn'],
      collection: 'The Shape of Punk to Come',
      collectionId: '2noRn2Aes5aoNVsU6iWThc',
      isrc: 'SEAAA9800001',
      itemDurationMs: 301_000,
    });
    expect(() => validateRecord(record.type, record.data)).not.toThrow();
  });

  it('represents episodes and local files: the show as creator, the local URI as the id', () => {
    const ep = spotifyNormalize.playlistItem('pl', 1, { added_at: null, track: episode });
    expect(ep.data).toMatchObject({
      itemKind: 'episode',
      trackId: episode.id,
      creators: ['A Podcast'],
      creatorIds: ['38bS44xjbVVZ3No3ByF1dJ'],
      collection: 'A Podcast',
      itemDurationMs: 1_686_230,
    });
    expect(ep.data).not.toHaveProperty('addedAt'); // null `added_at` (very old playlists) is left out
    const file = spotifyNormalize.playlistItem('pl', 2, {
      added_at: '2026-01-02T03:04:05Z',
      is_local: true,
      track: local,
    });
    expect(file.data).toMatchObject({ itemKind: 'local', trackId: local.uri, creators: ['Me'], collection: 'Garage' });
    // A local file's artist has no Spotify id: no partial id list.
    expect(file.data).not.toHaveProperty('creatorIds');
    expect(file.data).not.toHaveProperty('isrc');
    for (const r of [ep, file]) expect(() => validateRecord(r.type, r.data)).not.toThrow();
  });

  it('an entry pointing at nothing is refused with a reason (the run records it as a skip)', () => {
    expect(() => spotifyNormalize.playlistItem('pl', 3, { added_at: null, track: null })).toThrow(/removed/);
    expect(() =>
      spotifyNormalize.playlistItem('pl', 3, { item: { ...local, uri: undefined }, is_local: true }),
    ).toThrow(/local file/);
  });

  it('a profile without an id is refused with a reason (the run records it as a skip)', () => {
    // As the source may send it: the description marks no field required.
    const noId = { display_name: 'No Id' } as unknown as SpUser;
    expect(() => spotifyNormalize.profile(noId)).toThrow(/no id/);
    expect(() => spotifyNormalize.profile({ id: '' })).toThrow(/no id/);
    const profile = spotifyNormalize.profile({ id: 'wizzler', display_name: 'Wizzler' });
    expect(profile).toMatchObject({ type: 'profile', externalId: 'wizzler' });
    expect(() => validateRecord(profile.type, profile.data)).not.toThrow();
  });

  it('a play: durationMs is time played (Spotify does not say), itemDurationMs the track length', () => {
    const play = spotifyNormalize.play({ played_at: '2026-01-02T03:04:05.123Z', track, context: null });
    expect(play.type).toBe('media.play_event');
    expect(play.data).not.toHaveProperty('durationMs');
    expect(play.data).toMatchObject({ itemDurationMs: 301_000, isrc: 'SEAAA9800001', supplemental: false });
    expect(() => validateRecord(play.type, play.data)).not.toThrow();
  });

  it('keeps only what is an ISRC', () => {
    expect(normalizeIsrc('usrc17607839')).toBe('USRC17607839');
    expect(normalizeIsrc('US-RC1-76-07839')).toBe('USRC17607839');
    expect(normalizeIsrc('')).toBeUndefined();
    expect(normalizeIsrc('not an isrc')).toBeUndefined();
    expect(normalizeIsrc(null)).toBeUndefined();
  });
});
