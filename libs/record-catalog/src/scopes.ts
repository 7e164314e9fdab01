import type { RecordTypeName } from './record-types.js';

/**
 * For each integration, which record types each of its data scopes lets an app read.
 * A data scope is a read capability (`<integration>:read:<what>`); the Personal Server
 * answers a query for type T only if one of the grant's scopes maps to T. Types that no
 * scope maps to are never readable by apps.
 */
export const INTEGRATION_SCOPES: Readonly<Record<string, Readonly<Record<string, readonly RecordTypeName[]>>>> = {
  spotify: {
    'spotify:read:profile': ['profile'],
    'spotify:read:library': ['media.track'],
    'spotify:read:playlists': ['media.playlist', 'media.playlist_item'],
    'spotify:read:history': ['media.play_event'],
    // The connection-broker's catalog names Spotify's own scope (user-read-recently-played).
    'spotify:read:recently_played': ['media.play_event'],
    'spotify:read:follows': ['social.follow'],
  },
  netflix: {
    'netflix:read:profile': ['profile'],
    'netflix:read:history': ['media.watch_event'],
    'netflix:read:list': ['media.playlist', 'media.playlist_item', 'media.track'],
  },
  demo: {
    'demo:read:profile': ['profile'],
    'demo:read:notes': ['document.note'],
  },
  'demo-keys': {
    'demo-keys:read:notes': ['document.note'],
  },
  github: {
    'github:read:profile': ['profile'],
    'github:read:repos': ['code.repository'],
    'github:read:issues': ['code.issue'],
    'github:read:stars': ['code.star'],
    'github:read:follows': ['social.follow'],
  },
};

/** The record types a set of granted scopes covers (unknown scopes cover nothing). */
export function typesForScopes(integration: string, scopes: Iterable<string>): Set<RecordTypeName> {
  const mapping = INTEGRATION_SCOPES[integration] ?? {};
  const types = new Set<RecordTypeName>();
  for (const scope of scopes) for (const type of mapping[scope] ?? []) types.add(type);
  return types;
}

/** The record types an integration can produce at all (what sync may write). */
export function typesForIntegration(integration: string): Set<RecordTypeName> {
  return typesForScopes(integration, Object.keys(INTEGRATION_SCOPES[integration] ?? {}));
}

/** The scopes of an integration that cover `type` (the read capabilities a policy check asks about). */
export function scopesForType(integration: string, type: string): string[] {
  return Object.entries(INTEGRATION_SCOPES[integration] ?? {})
    .filter(([, types]) => types.includes(type))
    .map(([scope]) => scope);
}
