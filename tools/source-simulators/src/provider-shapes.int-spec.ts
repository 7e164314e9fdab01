import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { z } from 'zod';

import { obtainTokens } from './obtain-tokens.js';
import * as gh from './providers/github.schemas.js';
import * as sp from './providers/spotify.schemas.js';
import type { Quirks } from './quirks.js';
import { type RunningSimulator, startSimulator } from './server.js';

/**
 * The simulators ARE the providers' published shapes: every page the connectors read, for a
 * default account and with every quirk switched on, parses under the schema written from
 * the provider's OpenAPI description (providers/*.schemas.ts). A field renamed, a required
 * one dropped or a null where the description allows none fails here, not in production.
 */

/** The schema's complaints, short enough to read in a failure message. */
function problems(schema: z.ZodType, body: unknown): string[] {
  const result = schema.safeParse(body);
  return result.success ? [] : result.error.issues.slice(0, 5).map((i) => `${i.path.join('.')}: ${i.message}`);
}

/** Walks a listing page by page (a `next` field or a Link header), checking each page. */
async function walk(
  first: string,
  headers: Record<string, string>,
  schema: z.ZodType,
  next: (body: unknown, res: Response) => string | null | undefined,
): Promise<{ pages: number; bodies: unknown[] }> {
  const bodies: unknown[] = [];
  let url: string | null | undefined = first;
  while (url && bodies.length < 20) {
    const res = await fetch(url, { headers });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect({ url, problems: problems(schema, body) }).toEqual({ url, problems: [] });
    bodies.push(body);
    url = next(body, res);
  }
  return { pages: bodies.length, bodies };
}

const fieldNext = (body: unknown) => (body as { next?: string | null }).next;
const linkNext = (_: unknown, res: Response) => /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1];

describe('Spotify simulator pages parse under the Web API description', () => {
  let sim: RunningSimulator;
  const scopes = ['user-read-private', 'user-read-email', 'playlist-read-private', 'user-library-read'];
  beforeAll(async () => {
    sim = await startSimulator({ provider: 'spotify' });
  }, 30_000);
  afterAll(async () => {
    await sim?.stop();
  }, 30_000);

  const cases: [string, Quirks][] = [
    ['default', {}],
    ['old field names', { playlistFields: 'old' }],
    ['new field names', { playlistFields: 'new' }],
    ['null fields', { nullFields: true }],
    ['null playlist entries', { nullPlaylistEntries: [0, 3] }],
    ['shifting pages (insert)', { shiftingPages: 'insert' }],
    ['shifting pages (remove)', { shiftingPages: 'remove' }],
  ];
  it.each(cases)(
    '%s',
    async (name, quirks) => {
      const login = `shape-${name.replace(/\W+/g, '-')}`;
      await sim.control.createAccount({
        login,
        counts: { playlists: 4, playlist_tracks: 60, tracks: 60, recently_played: 60 },
      });
      await sim.control.setQuirks(login, quirks);
      const token = (await obtainTokens(sim, login, [...scopes, 'user-read-recently-played'])).access_token;
      const headers = { authorization: `Bearer ${token}` };
      const api = `${sim.url}/v1`;

      const me = await fetch(`${api}/me`, { headers });
      expect(problems(sp.spotifyMe, await me.json())).toEqual([]);

      const playlists = await walk(`${api}/me/playlists?limit=3`, headers, sp.spotifyPlaylistsPage, fieldNext);
      expect(playlists.pages).toBe(2);
      const listed = playlists.bodies.flatMap((b) => (b as z.infer<typeof sp.spotifyPlaylistsPage>).items);
      for (const p of listed.filter((p) => p !== null)) {
        const ref = p.items ?? p.tracks;
        expect(ref?.href).toEqual(expect.any(String));
        const items = await walk(`${ref!.href}?limit=50`, headers, sp.spotifyPlaylistItemsPage, fieldNext);
        expect(items.pages).toBe(2);
      }
      await walk(`${api}/me/tracks?limit=50`, headers, sp.spotifySavedTracksPage, fieldNext);
      const played = await walk(
        `${api}/me/player/recently-played?limit=50`,
        headers,
        sp.spotifyRecentlyPlayedPage,
        fieldNext,
      );
      expect(played.pages).toBe(2);
    },
    30_000,
  );
});

describe('GitHub simulator pages parse under the REST API description', () => {
  let sim: RunningSimulator;
  beforeAll(async () => {
    sim = await startSimulator({ provider: 'github' });
  }, 30_000);
  afterAll(async () => {
    await sim?.stop();
  }, 30_000);

  const cases: [string, Quirks][] = [
    ['default', {}],
    ['null fields', { nullFields: true }],
    ['raw commas in links', { rawCommasInLinks: true }],
    ['shifting pages (insert)', { shiftingPages: 'insert' }],
    ['shifting pages (remove)', { shiftingPages: 'remove' }],
  ];
  it.each(cases)(
    '%s',
    async (name, quirks) => {
      const login = `shape-${name.replace(/\W+/g, '-')}`;
      await sim.control.createAccount({ login, counts: { repos: 45, starred: 45, issues: 45 } });
      await sim.control.setQuirks(login, quirks);
      const token = (await obtainTokens(sim, login, ['repo', 'read:user'])).access_token;
      const headers = { authorization: `Bearer ${token}`, accept: 'application/vnd.github+json' };

      const user = await fetch(`${sim.url}/user`, { headers });
      expect(problems(gh.githubAuthenticatedUser, await user.json())).toEqual([]);
      const repos = await walk(
        `${sim.url}/user/repos?per_page=20&affiliation=owner,collaborator`,
        headers,
        gh.githubReposPage,
        linkNext,
      );
      expect(repos.pages).toBeGreaterThanOrEqual(3);
      await walk(`${sim.url}/user/starred?per_page=20`, headers, gh.githubStarredPage, linkNext);
      await walk(
        `${sim.url}/user/starred?per_page=20`,
        { ...headers, accept: 'application/vnd.github.star+json' },
        gh.githubStarredWithDatesPage,
        linkNext,
      );
      await walk(`${sim.url}/issues?filter=assigned&state=all&per_page=20`, headers, gh.githubIssuesPage, linkNext);
    },
    30_000,
  );
});
