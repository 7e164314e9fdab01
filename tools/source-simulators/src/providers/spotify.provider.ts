import { createHash, randomBytes } from 'node:crypto';

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import { principalOf, registerApi } from '../api-guard.js';
import { intParam, str } from '../http.js';
import { randomToken } from '../oauth/oauth-store.js';
import { handleTokenRequest } from '../oauth/token-request.js';
import { isoAt, Rng } from '../prng.js';
import { addItem, ChangeError, deleteItem } from '../seeding.js';
import { collectionFor, type Provider, type SimContext } from '../simulator-context.js';
import {
  generateTrack,
  type PlayItem,
  type PlaylistEntry,
  type PlaylistItem,
  renderPlaylist,
  renderPlaylistEntry,
  renderTrack,
  renderUserRef,
  type SavedTrackItem,
  spotifyCollections,
  type TrackFields,
} from './spotify.data.js';

/**
 * A simplified playlist in one generation of Spotify's field names: `tracks` (the old,
 * deprecated name), `items` (the new one), or both, each `{href, total}` with its own path.
 */
function playlistFields(p: ReturnType<typeof renderPlaylist>, fields: 'old' | 'new' | 'both') {
  const { tracks, ...rest } = p;
  const items = { href: tracks.href.replace(/\/tracks$/, '/items'), total: tracks.total };
  if (fields === 'old') return p;
  if (fields === 'new') return { ...rest, items };
  return { ...p, items };
}

/** Spotify's error object: `{"error":{"status":N,"message":"..."}}`. */
const apiError = (reply: FastifyReply, status: number, message: string) =>
  reply.code(status).send({ error: { status, message } });

/**
 * Spotify: accounts service (/authorize, /api/token with Basic client auth) and the Web
 * API under /v1 with offset/limit paging objects, before/after cursors for recently
 * played, scope checks, and 429 + Retry-After.
 */
export function spotifyProvider(): Provider {
  /** Reads limit/offset (limit 1..max) or answers 400 the way Spotify does. */
  const paging = (
    req: FastifyRequest,
    reply: FastifyReply,
    max = 50,
  ): { limit: number; offset: number } | undefined => {
    const limit = intParam(req.query, 'limit', 20);
    const offset = intParam(req.query, 'offset', 0);
    if (!Number.isInteger(limit) || limit < 1 || limit > max) {
      void apiError(reply, 400, 'Invalid limit');
      return undefined;
    }
    if (!Number.isInteger(offset) || offset < 0) {
      void apiError(reply, 400, 'Invalid offset');
      return undefined;
    }
    return { limit, offset };
  };

  /** A paging object: href/next/previous are this URL with the offset moved. */
  const pageUrl = (ctx: SimContext, req: FastifyRequest, offset: number, limit: number) => {
    const u = new URL(req.url, ctx.url);
    u.searchParams.set('offset', String(offset));
    u.searchParams.set('limit', String(limit));
    return u.toString();
  };
  const pageOf = <T, R>(
    ctx: SimContext,
    req: FastifyRequest,
    all: readonly T[],
    p: { limit: number; offset: number },
    render: (t: T) => R,
  ) => {
    const at = (offset: number) => pageUrl(ctx, req, offset, p.limit);
    return {
      href: at(p.offset),
      items: all.slice(p.offset, p.offset + p.limit).map(render),
      limit: p.limit,
      next: p.offset + p.limit < all.length ? at(p.offset + p.limit) : null,
      offset: p.offset,
      previous: p.offset > 0 ? at(Math.max(0, p.offset - p.limit)) : null,
      total: all.length,
    };
  };

  /**
   * The same paging object as a JSON string, from items already rendered to JSON: track
   * objects are rendered once per item and cached (items are replaced, never mutated, when
   * they change), so walking 100k saved tracks costs string joins.
   */
  const pageJson = <T>(
    ctx: SimContext,
    req: FastifyRequest,
    all: readonly T[],
    p: { limit: number; offset: number },
    renderJson: (t: T, index: number) => string,
  ) => {
    const next = p.offset + p.limit < all.length ? pageUrl(ctx, req, p.offset + p.limit, p.limit) : null;
    const previous = p.offset > 0 ? pageUrl(ctx, req, Math.max(0, p.offset - p.limit), p.limit) : null;
    const items = all
      .slice(p.offset, p.offset + p.limit)
      .map((t, i) => renderJson(t, p.offset + i))
      .join(',');
    return (
      `{"href":${JSON.stringify(pageUrl(ctx, req, p.offset, p.limit))},"items":[${items}],"limit":${p.limit},"next":${JSON.stringify(next)},` +
      `"offset":${p.offset},"previous":${JSON.stringify(previous)},"total":${all.length}}`
    );
  };
  // One cache per rendering: with the nullFields quirk a track renders without images and ids.
  const trackJsonCache = [new WeakMap<object, string>(), new WeakMap<object, string>()] as const;
  const trackJson = (ctx: SimContext, t: TrackFields & object, nulls = false) => {
    const cache = trackJsonCache[nulls ? 1 : 0];
    let json = cache.get(t);
    if (json === undefined) {
      json = JSON.stringify(renderTrack(ctx.url, t, nulls));
      cache.set(t, json);
    }
    return json;
  };
  const sendPage = (reply: FastifyReply, json: string) =>
    reply.header('content-type', 'application/json; charset=utf-8').send(json);

  const needScope = (reply: FastifyReply, scopes: string[], scope: string) =>
    scopes.includes(scope) ? undefined : apiError(reply, 403, 'Insufficient client scope');

  return {
    name: 'spotify',
    title: 'Spotify',
    authorizePath: '/authorize',
    // Spotify: 1-hour access tokens; refresh tokens without a published lifetime.
    tokenDefaults: { accessTokenTtlSeconds: 3600, refreshTokenTtlSeconds: 0, codeTtlSeconds: 600 },
    tokenFormat: { accessToken: () => `BQ${randomToken(96)}`, refreshToken: () => `AQ${randomToken(96)}` },
    scopes: {
      'user-read-private': 'Access your subscription details and country',
      'user-read-email': 'Get your real email address',
      'playlist-read-private': 'Access your private playlists',
      'playlist-read-collaborative': 'Access your collaborative playlists',
      'user-library-read': 'Access your saved content',
      'user-read-recently-played': 'Access your recently played items',
      'user-top-read': 'Read your top artists and content',
      'user-follow-read': 'Access your followers and who you are following',
      'user-read-playback-state': 'Read your currently playing content and Spotify Connect devices information',
      'user-read-currently-playing': 'Read your currently playing content',
      'playlist-modify-public': 'Manage your public playlists',
      'playlist-modify-private': 'Manage your private playlists',
      'user-library-modify': 'Manage your saved content',
    },
    issParameter: false,
    defaultAccounts: [
      { login: 'wizzler', name: 'Wizzler', email: 'wizzler@example.test' },
      { login: 'alice', name: 'Alice Example', email: 'alice@example.test' },
    ],
    collections: spotifyCollections(),
    seedSettings: ['playlist_tracks'],

    unauthorized(reply, kind) {
      return apiError(
        reply,
        401,
        kind === 'missing'
          ? 'No token provided'
          : kind === 'expired'
            ? 'The access token expired'
            : 'Invalid access token',
      );
    },

    throttled(reply, storm) {
      reply.header('retry-after', String(storm.retryAfterSeconds));
      return apiError(reply, 429, 'API rate limit exceeded');
    },

    controlRoutes(sim: FastifyInstance, ctx: SimContext) {
      const playlistOf = (login: string, id: string) => {
        const account = ctx.accounts.byLoginName(login);
        const playlists = account?.collections.get('playlists');
        const playlist = playlists?.get(id) as PlaylistItem | undefined;
        if (!account || !playlists || !playlist) throw new ChangeError(404, `no playlist ${id} for ${login}`);
        return { account, playlists, playlist };
      };
      // A changed playlist is a new object with a new snapshot_id, like any changed item.
      const replace = (
        playlists: { put(item: PlaylistItem): void },
        playlist: PlaylistItem,
        entries: PlaylistEntry[],
      ) => {
        const next: PlaylistItem = { ...playlist, entries, snapshot_id: randomBytes(16).toString('hex') };
        playlists.put(next);
        return { id: next.id, snapshot_id: next.snapshot_id, total: entries.length };
      };

      // Adds `count` generated tracks to the end of a playlist (or at `position`).
      sim.post<{ Params: { login: string; id: string } }>(
        '/accounts/:login/playlists/:id/tracks',
        async (req, reply) => {
          const { playlists, playlist } = playlistOf(req.params.login, req.params.id);
          const b = (req.body ?? {}) as { count?: unknown; position?: unknown };
          const count = typeof b.count === 'number' && b.count >= 1 ? Math.floor(b.count) : 1;
          const position =
            typeof b.position === 'number'
              ? Math.max(0, Math.min(playlist.entries.length, b.position))
              : playlist.entries.length;
          const now = ctx.clock.now();
          const rng = new Rng(`${playlist.id}:${playlist.entries.length}:${now}`);
          const added: PlaylistEntry[] = [];
          for (let i = 0; i < count; i++) added.push({ ...generateTrack(rng), added_at: isoAt(now) });
          const entries = [...playlist.entries.slice(0, position), ...added, ...playlist.entries.slice(position)];
          return reply
            .code(201)
            .send({ ...replace(playlists, playlist, entries), added: added.map((e) => e.track_id) });
        },
      );

      // Removes every occurrence of a track from a playlist.
      sim.delete<{ Params: { login: string; id: string; trackId: string } }>(
        '/accounts/:login/playlists/:id/tracks/:trackId',
        (req) => {
          const { playlists, playlist } = playlistOf(req.params.login, req.params.id);
          const entries = playlist.entries.filter((e) => e.track_id !== req.params.trackId);
          if (entries.length === playlist.entries.length)
            throw new ChangeError(404, `track ${req.params.trackId} is not in playlist ${playlist.id}`);
          return replace(playlists, playlist, entries);
        },
      );
    },

    routes(app: FastifyInstance, ctx: SimContext) {
      app.post('/api/token', async (req, reply) => {
        const outcome = handleTokenRequest(ctx, req);
        if (!outcome.ok) {
          const description =
            outcome.error === 'invalid_client'
              ? 'Invalid client'
              : outcome.reason?.startsWith('refresh_')
                ? 'Invalid refresh token'
                : outcome.reason === 'redirect_uri_mismatch'
                  ? 'Invalid redirect URI'
                  : outcome.reason === 'pkce_mismatch' || outcome.reason === 'pkce_missing'
                    ? 'code_verifier was incorrect'
                    : outcome.error === 'invalid_grant'
                      ? 'Invalid authorization code'
                      : outcome.description;
          return reply.code(400).send({ error: outcome.error, error_description: description });
        }
        const t = outcome.tokens;
        return {
          access_token: t.accessToken,
          token_type: 'Bearer',
          scope: t.scopes.join(' '),
          expires_in: t.expiresIn,
          refresh_token: t.refreshToken,
        };
      });

      registerApi(app, ctx, (api) => {
        // Spotify sends an ETag with its answers and honours If-None-Match with a 304.
        api.addHook('onSend', async (req, reply, payload) => {
          if (reply.statusCode !== 200 || typeof payload !== 'string') return payload;
          const etag = `"${createHash('sha256').update(payload).digest('base64url').slice(0, 32)}"`;
          reply.header('etag', etag).header('cache-control', 'private, max-age=0');
          const inm = req.headers['if-none-match'];
          if (inm && inm.split(',').some((t) => t.trim() === etag)) {
            ctx.counters.notModified++;
            reply.code(304);
            return '';
          }
          return payload;
        });

        api.get('/v1/me', (req) => {
          const { account, scopes } = principalOf(req);
          const priv = scopes.includes('user-read-private');
          return {
            ...(priv
              ? { country: 'DE', explicit_content: { filter_enabled: false, filter_locked: false }, product: 'premium' }
              : {}),
            // "`null` if not available."
            display_name: account.quirks.nullFields ? null : account.name,
            ...(scopes.includes('user-read-email') ? { email: account.email } : {}),
            external_urls: { spotify: `https://open.spotify.com/user/${account.login}` },
            followers: { href: null, total: 0 },
            href: `${ctx.url}/v1/users/${account.login}`,
            id: account.login,
            images: [],
            type: 'user',
            uri: `spotify:user:${account.login}`,
          };
        });

        // In the order they were added to the account; private ones only with playlist-read-private.
        const visiblePlaylists = (req: FastifyRequest) => {
          const { account, scopes } = principalOf(req);
          const all = [...collectionFor(account, 'playlists').values()] as PlaylistItem[];
          return scopes.includes('playlist-read-private') ? all : all.filter((p) => p.public);
        };

        api.get('/v1/me/playlists', async (req, reply) => {
          const p = paging(req, reply);
          if (!p) return reply;
          const { account } = principalOf(req);
          const fields = account.quirks.playlistFields ?? 'both';
          const page = pageOf(ctx, req, visiblePlaylists(req), p, (pl) =>
            playlistFields(renderPlaylist(ctx.url, pl, account, account.quirks.nullFields), fields),
          );
          // Since Nov 2024 the list can hold `null` where a playlist is no longer available.
          const nulls = p.offset === 0 ? (account.quirks.nullPlaylistEntries ?? []) : [];
          const items: (ReturnType<typeof playlistFields> | null)[] = page.items;
          for (const at of [...nulls].sort((a, b) => a - b)) items.splice(Math.min(at, items.length), 0, null);
          return { ...page, items };
        });

        const findPlaylist = (req: FastifyRequest<{ Params: { id: string } }>) =>
          visiblePlaylists(req).find((pl) => pl.id === req.params.id);

        api.get<{ Params: { id: string } }>('/v1/playlists/:id', async (req, reply) => {
          const pl = findPlaylist(req);
          if (!pl) return apiError(reply, 404, 'Resource not found');
          const owner = principalOf(req).account;
          const tracks = pageOf(ctx, req, pl.entries, { limit: 100, offset: 0 }, (e) =>
            renderPlaylistEntry(ctx.url, e, owner),
          );
          tracks.href = `${ctx.url}/v1/playlists/${pl.id}/tracks?offset=0&limit=100`;
          if (tracks.next) tracks.next = `${ctx.url}/v1/playlists/${pl.id}/tracks?offset=100&limit=100`;
          return { ...renderPlaylist(ctx.url, pl, owner), followers: { href: null, total: 0 }, tracks };
        });

        // /tracks is the long-standing path; /items its newer name (items carry `item` too).
        for (const suffix of ['tracks', 'items'] as const) {
          api.get<{ Params: { id: string } }>(`/v1/playlists/:id/${suffix}`, async (req, reply) => {
            const pl = findPlaylist(req);
            if (!pl) return apiError(reply, 404, 'Resource not found');
            const { quirks } = principalOf(req).account;
            // A followed playlist whose owner's items the app may not read answers 403.
            if (quirks.forbiddenPlaylists?.includes(pl.id)) return apiError(reply, 403, 'Forbidden');
            const fields = quirks.playlistFields ?? 'both';
            if (fields === 'new' && suffix === 'tracks') return apiError(reply, 404, 'Service not found');
            const p = paging(req, reply);
            if (!p) return reply;
            // nullFields: "some very old playlists" send null added_at and added_by, and an
            // entry whose track was removed from Spotify points at null (here the first one).
            const nulls = quirks.nullFields === true;
            const addedBy = nulls ? 'null' : JSON.stringify(renderUserRef(ctx.url, principalOf(req).account));
            return sendPage(
              reply,
              pageJson(ctx, req, pl.entries, p, (e, at) => {
                const track = nulls && at === 0 ? 'null' : trackJson(ctx, e, nulls);
                const addedAt = nulls ? 'null' : JSON.stringify(e.added_at);
                return (
                  `{"added_at":${addedAt},"added_by":${addedBy},"is_local":false,"primary_color":null,` +
                  (fields === 'new' ? '' : `"track":${track},`) +
                  (suffix === 'items' && fields !== 'old' ? `"item":${track},` : '') +
                  `"video_thumbnail":{"url":null}}`
                );
              }),
            );
          });
        }

        api.get('/v1/me/tracks', async (req, reply) => {
          const refused = needScope(reply, principalOf(req).scopes, 'user-library-read');
          if (refused) return refused;
          const p = paging(req, reply);
          if (!p) return reply;
          const { account } = principalOf(req);
          const all = collectionFor(account, 'tracks').sorted(
            'added_at',
            'desc',
            (t) => t.added_at as string,
          ) as SavedTrackItem[];
          const nulls = account.quirks.nullFields;
          const json = pageJson(
            ctx,
            req,
            all,
            p,
            (t) => `{"added_at":${JSON.stringify(t.added_at)},"track":${trackJson(ctx, t, nulls)}}`,
          );
          // shiftingPages, while the reader is between the first page and the next: `insert`
          // saves a track (it lands at the head), `remove` unsaves the head one just served.
          const shifting = p.offset === 0 ? account.quirks.shiftingPages : undefined;
          if (shifting === 'insert') addItem(ctx, account, 'tracks', {});
          if (shifting === 'remove' && all[0]) deleteItem(ctx, account, 'tracks', all[0].id);
          return sendPage(reply, json);
        });

        // Newest first. `before=T`: plays strictly before T; `after=T`: plays strictly after T
        // (the ones closest to T, so walking forward with `after` misses none).
        api.get('/v1/me/player/recently-played', async (req, reply) => {
          const { account, scopes } = principalOf(req);
          const refused = needScope(reply, scopes, 'user-read-recently-played');
          if (refused) return refused;
          const limit = intParam(req.query, 'limit', 20);
          if (!Number.isInteger(limit) || limit < 1 || limit > 50) return apiError(reply, 400, 'Invalid limit');
          const before = str(req.query, 'before');
          const after = str(req.query, 'after');
          if (before !== undefined && after !== undefined)
            return apiError(reply, 400, 'Only one of before and after may be given');
          for (const v of [before, after])
            if (v !== undefined && !/^\d+$/.test(v)) return apiError(reply, 400, 'Invalid cursor');
          const all = collectionFor(account, 'recently_played').sorted('played', 'desc', (p) =>
            Number(p.id),
          ) as PlayItem[];
          let page: PlayItem[];
          let more: boolean;
          if (after !== undefined) {
            const newer = all.filter((p) => Number(p.id) > Number(after));
            page = newer.slice(Math.max(0, newer.length - limit));
            more = newer.length > limit;
          } else {
            const older = before !== undefined ? all.filter((p) => Number(p.id) < Number(before)) : all;
            page = older.slice(0, limit);
            more = older.length > limit;
          }
          const newest = page[0];
          const oldest = page.at(-1);
          const cursors = newest && oldest ? { after: newest.id, before: oldest.id } : null;
          const nextUrl = new URL('/v1/me/player/recently-played', ctx.url);
          nextUrl.searchParams.set('limit', String(limit));
          if (cursors) {
            if (after !== undefined) nextUrl.searchParams.set('after', cursors.after);
            else nextUrl.searchParams.set('before', cursors.before);
          }
          return {
            items: page.map((p) => ({
              track: renderTrack(ctx.url, p, account.quirks.nullFields),
              played_at: p.played_at,
              context: p.context_playlist_id
                ? {
                    type: 'playlist',
                    href: `${ctx.url}/v1/playlists/${p.context_playlist_id}`,
                    external_urls: { spotify: `https://open.spotify.com/playlist/${p.context_playlist_id}` },
                    uri: `spotify:playlist:${p.context_playlist_id}`,
                  }
                : null,
            })),
            next: more && cursors ? nextUrl.toString() : null,
            cursors,
            limit,
            href: new URL(req.url, ctx.url).toString(),
          };
        });
      });
    },
  };
}
