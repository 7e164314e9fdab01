import { readFileSync } from 'node:fs';

import { AppError } from '@context-gateway/errors';

import {
  INTEGRATION_SCOPES,
  isRecordType,
  RECORD_TYPES,
  renderRecordTypesMarkdown,
  scopesForType,
  typesForIntegration,
  typesForScopes,
  validateRecord,
} from './index.js';

describe('record catalog', () => {
  it('a Spotify play and a Netflix viewing validate against one shape', () => {
    const spotify = validateRecord('media.play_event', {
      source: 'spotify',
      trackId: 't1',
      title: 'Song',
      creators: ['A'],
      kind: 'music',
      playedAt: '2026-11-01T10:00:00Z',
    });
    const netflix = validateRecord('media.watch_event', {
      source: 'netflix',
      trackId: 'n1',
      title: 'Film',
      kind: 'film',
      playedAt: '2026-11-01T10:00:00Z',
    });
    // watch_event is play_event plus series fields: every play_event field means the same there.
    const play = RECORD_TYPES.find((t) => t.name === 'media.play_event')!;
    const watch = RECORD_TYPES.find((t) => t.name === 'media.watch_event')!;
    for (const key of Object.keys(play.schema.shape)) expect(Object.keys(watch.schema.shape)).toContain(key);
    expect(netflix.creators).toEqual([]); // defaults applied on write
    expect(spotify.kind).toBe('music');
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
    expect(scopesForType('netflix', 'media.watch_event')).toEqual(['netflix:read:history']);
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
