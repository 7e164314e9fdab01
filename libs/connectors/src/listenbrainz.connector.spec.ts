import { validateRecord } from '@context-gateway/record-catalog';
import { describe, expect, it } from '@jest/globals';

import type { SkippedItem } from './connector.js';
import { type LbListen, listensToRecords, normalizeListen } from './listenbrainz.connector.js';

/** The example listen of ListenBrainz's JSON documentation ("Example listen with mbid_mapping"). */
const documented: LbListen = {
  inserted_at: 1771414107,
  listened_at: 1771414109,
  recording_msid: 'fd0cad33-ea33-453b-8155-1292379277db',
  user_name: 'rob',
  track_metadata: {
    artist_name: 'Röyksopp',
    track_name: 'Some Resolve',
    release_name: 'Profound Mysteries II',
    additional_info: {
      artist_mbids: ['1c70a3fc-fa3c-4be1-8b55-c3192db8a884'],
      duration_ms: 402390,
      recording_mbid: '30d08f4c-d825-4ae1-b79c-44242cddd7c0',
      release_mbid: 'f1418001-7f1e-46af-bfdb-95faeded8841',
      submission_client: 'navidrome',
    },
    mbid_mapping: {
      recording_mbid: '30d08f4c-d825-4ae1-b79c-44242cddd7c0',
      release_mbid: 'e96c2e7b-94fd-4fbe-9c44-1a27d8664825',
      artists: [{ artist_mbid: '1c70a3fc-fa3c-4be1-8b55-c3192db8a884', artist_credit_name: 'Röyksopp' }],
    },
  },
} as LbListen;

const withInfo = (info: Record<string, unknown>, extra: Record<string, unknown> = {}): LbListen => ({
  listened_at: 1700000000,
  recording_msid: 'aaaaaaaa-0000-4000-8000-000000000001',
  track_metadata: { artist_name: 'A & B', track_name: 'Song', additional_info: info, ...extra },
});

describe('ListenBrainz listens → media.play_event', () => {
  it("the documentation's example becomes the catalog's play event, the MusicBrainz recording its track id", () => {
    const record = normalizeListen(documented);
    expect(record).toEqual({
      type: 'media.play_event',
      externalId: '1771414109:fd0cad33-ea33-453b-8155-1292379277db',
      occurredAt: '2026-02-18T11:28:29.000Z',
      data: {
        source: 'listenbrainz',
        trackId: '30d08f4c-d825-4ae1-b79c-44242cddd7c0',
        title: 'Some Resolve',
        creators: ['Röyksopp'],
        creatorIds: ['1c70a3fc-fa3c-4be1-8b55-c3192db8a884'],
        kind: 'music',
        playedAt: '2026-02-18T11:28:29.000Z',
        itemDurationMs: 402390,
        supplemental: false,
        collection: 'Profound Mysteries II',
        // The release the scrobbler named with `release_name`, not the mapper's canonical one.
        collectionId: 'f1418001-7f1e-46af-bfdb-95faeded8841',
        device: 'navidrome',
      },
    });
    expect(() => validateRecord(record.type, record.data)).not.toThrow();
  });

  it('without a MusicBrainz recording the msid is the track id; a joined credit with two ids gets no creatorIds', () => {
    const data = normalizeListen(
      withInfo({ artist_mbids: ['a1', 'b2'], duration: 215, duration_played: 61, media_player: 'VLC' }),
    ).data;
    expect(data).toMatchObject({
      trackId: 'aaaaaaaa-0000-4000-8000-000000000001',
      creators: ['A & B'],
      itemDurationMs: 215_000,
      durationMs: 61_000,
      device: 'VLC',
    });
    expect(data).not.toHaveProperty('creatorIds');
    // The mapper's split credit, when there is one, gives both names with their ids.
    const mapped = normalizeListen(
      withInfo(
        {},
        {
          mbid_mapping: {
            recording_mbid: 'r1',
            artists: [
              { artist_mbid: 'a1', artist_credit_name: 'A' },
              { artist_mbid: 'b2', artist_credit_name: 'B' },
            ],
          },
        },
      ),
    ).data;
    expect(mapped).toMatchObject({ trackId: 'r1', creators: ['A', 'B'], creatorIds: ['a1', 'b2'] });
  });

  it('an ISRC is upper-cased without hyphens, and left out when it is not one', () => {
    expect(normalizeListen(withInfo({ isrc: 'us-um7-17-03861' })).data.isrc).toBe('USUM71703861');
    expect(normalizeListen(withInfo({ isrc: 'N/A' })).data).not.toHaveProperty('isrc');
    expect(normalizeListen(withInfo({ isrc: 12 })).data).not.toHaveProperty('isrc');
  });

  it('optional fields a scrobbler left out, or sent wrongly typed, are left out, never null', () => {
    const data = normalizeListen({
      listened_at: 1700000000,
      recording_msid: 'm',
      track_metadata: {
        artist_name: 'A',
        track_name: 'T',
        release_name: null,
        additional_info: { duration_ms: -5, duration: 'long', release_mbid: '' },
      },
    }).data;
    expect(Object.keys(data).sort()).toEqual(
      ['creators', 'kind', 'playedAt', 'source', 'supplemental', 'title', 'trackId'].sort(),
    );
    expect(() => validateRecord('media.play_event', data)).not.toThrow();
  });

  it('a null listen and listens missing what a play needs are skipped by position; their siblings stay', () => {
    const skipped: SkippedItem[] = [];
    const records = listensToRecords(
      [
        documented,
        null,
        { ...withInfo({}), track_metadata: { artist_name: 'A' } },
        { track_metadata: { artist_name: 'A', track_name: 'T' } },
        withInfo({}),
      ],
      '/1/user/rob/listens?count=5',
      (s) => skipped.push(s),
    );
    expect(records.map((r) => r.externalId)).toEqual([
      '1771414109:fd0cad33-ea33-453b-8155-1292379277db',
      '1700000000:aaaaaaaa-0000-4000-8000-000000000001',
    ]);
    expect(skipped).toEqual([
      { kind: 'malformed', resource: '/1/user/rob/listens?count=5[1]', reason: 'the source listed null' },
      {
        kind: 'malformed',
        resource: '/1/user/rob/listens?count=5[2]',
        reason: 'listen 1700000000:aaaaaaaa-0000-4000-8000-000000000001 has no track_name',
      },
      {
        kind: 'malformed',
        resource: '/1/user/rob/listens?count=5[3]',
        reason: 'the listen has no listened_at or recording_msid',
      },
    ]);
  });
});
