import { readFileSync } from 'node:fs';

import { AppError } from '@context-gateway/errors';

import {
  assertRecordMigrationsConsistent,
  CATALOG_VERSION,
  INTEGRATION_SCOPES,
  isRecordType,
  migrateRecordBody,
  pendingRecordMigrations,
  RECORD_TYPES,
  renderRecordTypesMarkdown,
  scopesForType,
  typesForIntegration,
  typesForScopes,
  validateRecord,
} from './index.js';

describe('record catalog', () => {
  it('a Spotify play and a Netflix viewing are one type with one shape', () => {
    const spotify = validateRecord('media.play_event', {
      source: 'spotify',
      trackId: 't1',
      title: 'Song',
      creators: ['A'],
      creatorIds: ['a1'],
      kind: 'music',
      playedAt: '2026-11-01T10:00:00Z',
      itemDurationMs: 200_000,
      isrc: 'USUM71703861',
    });
    const netflix = validateRecord('media.play_event', {
      source: 'netflix',
      trackId: 'n1',
      title: 'Dark: Season 1: Secrets (Episode 1)',
      kind: 'episode',
      playedAt: '2026-11-01T10:00:00Z',
      durationMs: 2_530_000,
      profile: 'Ana',
      series: 'Dark',
      season: 1,
      episode: 1,
    });
    expect(netflix.creators).toEqual([]); // defaults applied on write
    expect(netflix.supplemental).toBe(false);
    expect(spotify.kind).toBe('music');
    // An ISRC is stored one way only: upper case, no hyphens.
    expect(() => validateRecord('media.play_event', { ...spotify, isrc: 'us-um7-17-03861' })).toThrow(AppError);
  });

  it('retires media.watch_event with a migration whose results fit media.play_event', () => {
    expect(() => assertRecordMigrationsConsistent()).not.toThrow();
    expect(RECORD_TYPES.find((t) => t.name === 'media.watch_event')?.retired).toBe(CATALOG_VERSION);
    // Nothing grants the retired type any more: only the migration reads it.
    for (const scopes of Object.values(INTEGRATION_SCOPES))
      for (const types of Object.values(scopes)) expect(types).not.toContain('media.watch_event');
    const [migration] = pendingRecordMigrations(2);
    expect(migration).toMatchObject({ from: 'media.watch_event', to: 'media.play_event', version: 3 });
    expect(pendingRecordMigrations(3)).toEqual([]);
    // A v2 Netflix viewing as it was stored.
    const stored = validateRecord('media.watch_event', {
      source: 'netflix',
      trackId: 'netflix:abc',
      title: 'Dark: Season 1: Secrets (Episode 1)',
      kind: 'episode',
      playedAt: '2024-03-01T20:15:00.000Z',
      durationMs: 2_530_000,
      device: 'TV',
      profile: 'Ana',
      series: 'Dark',
      season: 1,
    });
    expect(migrateRecordBody(migration!, stored)).toEqual({ ...stored, supplemental: false });
    // Every field a watch event had means the same in a play event.
    const play = RECORD_TYPES.find((t) => t.name === 'media.play_event')!;
    const watch = RECORD_TYPES.find((t) => t.name === 'media.watch_event')!;
    for (const key of Object.keys(watch.schema.shape)) expect(Object.keys(play.schema.shape)).toContain(key);
  });

  it('rejects unknown types, missing fields and unknown fields with invalid_record', () => {
    expect(() => validateRecord('calendar.event', {})).toThrow(AppError);
    const bad = (() => {
      try {
        validateRecord('code.repository', { source: 'github', id: '1', fullName: 'a/b', private: false, stars: 3 });
      } catch (error) {
        return error as AppError;
      }
      return undefined;
    })();
    expect(bad?.code).toBe('invalid_record');
    expect(bad?.problems.length).toBeGreaterThan(0);
    expect(() => validateRecord('code.repository', { source: 'github', id: '1', fullName: 'a/b' })).toThrow(
      /code.repository/,
    );
  });

  it('maps scopes to types per integration, and nothing for unknown scopes', () => {
    expect([...typesForScopes('spotify', ['spotify:read:playlists'])].sort()).toEqual([
      'media.playlist',
      'media.playlist_item',
    ]);
    expect(typesForScopes('spotify', ['github:read:repos']).size).toBe(0);
    expect(typesForIntegration('github').has('code.repository')).toBe(true);
    expect(scopesForType('netflix', 'media.play_event')).toEqual(['netflix:read:history']);
    expect(scopesForType('spotify', 'media.play_event')).toEqual(['spotify:read:recently_played']);
    // Scopes promise only what something writes: Netflix's export has no list, so no scope gives one.
    expect(scopesForType('netflix', 'media.playlist')).toEqual([]);
    expect(scopesForType('spotify', 'code.issue')).toEqual([]);
    for (const scopes of Object.values(INTEGRATION_SCOPES))
      for (const types of Object.values(scopes)) for (const t of types) expect(isRecordType(t)).toBe(true);
  });

  it('docs/record-types.md is the generated rendering of the catalog', () => {
    const committed = readFileSync(new URL('../../../docs/record-types.md', import.meta.url), 'utf8');
    expect(committed).toBe(renderRecordTypesMarkdown());
  });
});
