import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import { countApiRequest } from '../api-guard.js';
import { str } from '../http.js';
import { randomToken } from '../oauth/oauth-store.js';
import { Rng } from '../prng.js';
import { ChangeError } from '../seeding.js';
import { type Account, collectionFor, type Provider, type SimContext, type SimItem } from '../simulator-context.js';
import { defaultListenBrainzToken, generateListen, renderListen, uuidFrom } from './listenbrainz.data.js';

/** The API's limits (listenbrainz/webserver/views/api_tools.py): DEFAULT_ITEMS_PER_GET, MAX_ITEMS_PER_GET. */
const DEFAULT_COUNT = 25;
const MAX_COUNT = 1000;
/** What ListenBrainz answers over its limit (brainzutils' on_over_limit): text, not JSON. */
const OVER_LIMIT =
  'You have exceeded your rate limit. See the X-RateLimit-* response headers for more information on your current rate limit.\n';

/** ListenBrainz's error body (`{"code": 400, "error": "..."}`). */
const error = (reply: FastifyReply, code: number, message: string) => reply.code(code).send({ code, error: message });

/** The token of `Authorization: Token <t>` (how ListenBrainz reads it: case-insensitive scheme, the second word). */
function userToken(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  if (header?.toLowerCase().startsWith('token ')) return header.split(' ')[1] || undefined;
  return undefined;
}

/** A unix-seconds query parameter: undefined when absent, NaN when not an integer (ListenBrainz answers 400). */
function tsParam(req: FastifyRequest, name: string): number | undefined {
  const v = str(req.query, name);
  if (v === undefined) return undefined;
  return /^-?\d+$/.test(v.trim()) ? Number(v) : Number.NaN;
}

/**
 * `listenbrainz`: the ListenBrainz API (api.listenbrainz.org) as far as a listening-history
 * reader needs it — `/1/validate-token` and `/1/user/{user}/listens` with max_ts/min_ts/count
 * semantics, error bodies and brainzutils' fixed-window rate limit headers. No OAuth: the
 * person pastes the user token from their settings page; each account has one derived
 * from its seed (`defaultListenBrainzToken`), more are minted through the control API.
 */
export function listenbrainzProvider(): Provider {
  /** Requests per window per caller (brainzutils keys by token only for whitelisted tokens, else by IP). */
  const windows = new Map<string, { resetAt: number; per: number; used: number }>();

  return {
    name: 'listenbrainz',
    title: 'ListenBrainz',
    // Every simulator serves an authorization page; ListenBrainz's API uses pasted user tokens, nothing uses it.
    authorizePath: '/oauth/authorize',
    tokenDefaults: { accessTokenTtlSeconds: 3600, refreshTokenTtlSeconds: 0, codeTtlSeconds: 600 },
    tokenFormat: { accessToken: () => `meba_${randomToken()}`, refreshToken: () => `meba_rt_${randomToken()}` },
    scopes: {},
    issParameter: false,
    // brainzutils' defaults for a caller without a whitelisted token: 30 requests per 10 s window.
    rateLimitDefaults: { limit: 30, windowSeconds: 10 },
    defaultAccounts: [
      { login: 'rob', name: 'rob', email: 'rob@example.test' },
      { login: 'alice', name: 'alice', email: 'alice@example.test' },
    ],
    collections: {
      listens: {
        defaultCount: 1200,
        generate: (_ctx, account, rng, index) => generateListen(account, rng, index),
        // A submitted listen keeps the listened_at its client gave; ListenBrainz stamps when it was stored.
        stamp(item, nowMs, kind) {
          if (kind === 'create') item.inserted_at = Math.floor(nowMs / 1000);
        },
        readOnly: ['recording_msid', 'inserted_at'],
      },
    },
    unauthorized(reply, kind) {
      return error(
        reply,
        401,
        kind === 'missing' ? 'You need to provide an Authorization header.' : 'Invalid authorization token.',
      );
    },
    throttled(reply, storm, ctx) {
      const now = Math.floor(ctx.clock.now() / 1000);
      return reply
        .code(429)
        .header('x-ratelimit-limit', '30')
        .header('x-ratelimit-remaining', '0')
        .header('x-ratelimit-reset', String(now + storm.retryAfterSeconds))
        .header('x-ratelimit-reset-in', String(storm.retryAfterSeconds))
        .type('text/html; charset=utf-8')
        .send(OVER_LIMIT);
    },
    onAccountCreated(ctx, account) {
      ctx.store.addApiKey(defaultListenBrainzToken(account.seed), account.id, []);
    },
    controlRoutes(sim: FastifyInstance, ctx: SimContext) {
      // Same paths as demo's API keys, so SimulatorControl.createApiKey / revokeApiKey work here too.
      sim.post<{ Params: { login: string } }>('/accounts/:login/api-keys', async (req, reply) => {
        const account = ctx.accounts.byLoginName(req.params.login);
        if (!account) throw new ChangeError(404, `no account ${req.params.login}`);
        const key = uuidFrom(new Rng(randomToken()));
        ctx.store.addApiKey(key, account.id, []);
        return reply.code(201).send({ key });
      });
      sim.delete<{ Params: { key: string } }>('/api-keys/:key', async (req, reply) => {
        if (!ctx.store.revokeApiKey(req.params.key)) throw new ChangeError(404, 'unknown user token');
        return reply.code(204).send();
      });
    },

    routes(app: FastifyInstance, ctx: SimContext) {
      void app.register((api, _options, registered) => {
        // Every /1 answer: counted, the storm, brainzutils' fixed window (X-RateLimit-* on each answer).
        api.addHook('onRequest', async (req, reply) => {
          const c = countApiRequest(req, ctx);
          const storm = ctx.throttle.check();
          if (storm) {
            c.throttled++;
            return ctx.provider.throttled(reply, storm, ctx);
          }
          const nowMs = ctx.clock.now();
          const per = ctx.rateLimit.windowSeconds * 1000;
          // Windows are aligned to the clock, as brainzutils' are: reset = (now // per) * per + per.
          const resetAt = Math.floor(nowMs / per) * per + per;
          let w = windows.get(req.ip);
          // A changed window length starts a fresh window (two lengths can share a reset time).
          if (!w || w.resetAt !== resetAt || w.per !== per) windows.set(req.ip, (w = { resetAt, per, used: 0 }));
          w.used++;
          reply
            .header('x-ratelimit-limit', String(ctx.rateLimit.limit))
            .header('x-ratelimit-remaining', String(Math.max(0, ctx.rateLimit.limit - w.used)))
            .header('x-ratelimit-reset', String(Math.floor(resetAt / 1000)))
            .header('x-ratelimit-reset-in', String(Math.ceil((resetAt - nowMs) / 1000)));
          if (w.used > ctx.rateLimit.limit) {
            c.throttled++;
            return reply.code(429).type('text/html; charset=utf-8').send(OVER_LIMIT);
          }
          if (ctx.latency.ms > 0) await new Promise((r) => setTimeout(r, ctx.latency.ms));
          return undefined;
        });

        // 200 either way: `valid` says whether the token is one (the header, or ?token= for old clients).
        api.get('/1/validate-token', async (req, reply) => {
          const token = userToken(req) ?? str(req.query, 'token');
          if (!token) return error(reply, 400, 'You need to provide an Authorization token.');
          const check = ctx.store.checkAccessToken(token);
          const account = check.status === 'ok' ? ctx.accounts.byAccountId(check.accountId) : undefined;
          if (!account) {
            ctx.counters.unauthorized++;
            return { code: 200, message: 'Token invalid.', valid: false };
          }
          return { code: 200, message: 'Token valid.', valid: true, user_name: account.login };
        });

        // Public, as at ListenBrainz: no token needed to read someone's listens.
        api.get<{ Params: { user: string } }>('/1/user/:user/listens', async (req, reply) => {
          const account = ctx.accounts.byLoginName(req.params.user);
          if (!account) return error(reply, 404, `Cannot find user: ${req.params.user}`);
          const maxTs = tsParam(req, 'max_ts');
          const minTs = tsParam(req, 'min_ts');
          for (const [name, v] of [
            ['max_ts', maxTs],
            ['min_ts', minTs],
          ] as const) {
            if (Number.isNaN(v))
              return error(reply, 400, `Incorrect ${name} timestamp argument: ${str(req.query, name)}`);
          }
          if (maxTs !== undefined && minTs !== undefined && maxTs <= minTs)
            return error(reply, 400, 'max_ts should be greater than min_ts');
          const rawCount = str(req.query, 'count');
          if (rawCount && !/^\s*[-+]?\d+\s*$/.test(rawCount))
            return error(reply, 400, `Invalid count argument: ${rawCount}`);
          // Over the maximum is not an error: it is cut to MAX_ITEMS_PER_GET.
          const count = Math.min(rawCount ? Number(rawCount) : DEFAULT_COUNT, MAX_COUNT);
          if (count < 0) return error(reply, 400, 'Number of items requested should be positive');
          return { payload: listensPayload(account, minTs, maxTs, count) };
        });
        registered();
      });
    },
  };
}

/**
 * What ListenBrainz returns for a user's listens: newest first. With `min_ts` it takes the
 * `count` listens closest AFTER min_ts (it reads ascending from there, then reverses), so
 * walking forward page by page misses no later listened_at (a listen added later with an
 * earlier listened_at is behind the walk, as at ListenBrainz); otherwise the `count`
 * newest before `max_ts` (or of all). Both bounds are exclusive. `latest_listen_ts` / `oldest_listen_ts` are the
 * user's newest and oldest listens overall (0 for a user with none).
 */
function listensPayload(account: Account, minTs: number | undefined, maxTs: number | undefined, count: number) {
  const all = collectionFor(account, 'listens').sorted('listened_at', 'desc', (l) => l.listened_at as number);
  const inRange = (l: SimItem) =>
    (minTs === undefined || (l.listened_at as number) > minTs) &&
    (maxTs === undefined || (l.listened_at as number) < maxTs);
  let chosen: SimItem[];
  if (minTs !== undefined) {
    const after: SimItem[] = [];
    for (let i = all.length - 1; i >= 0 && after.length < count; i--) {
      const l = all[i];
      if (l && inRange(l)) after.push(l);
    }
    chosen = after.reverse();
  } else {
    chosen = [];
    for (const l of all) {
      if (chosen.length >= count) break;
      if (inRange(l)) chosen.push(l);
    }
  }
  const quirks = account.quirks;
  const listens = chosen.map((l) =>
    renderListen(account, l, {
      noTrackName: quirks.listensWithoutTrackName?.includes(String(l.id)) ?? false,
      noAdditionalInfo: quirks.listensWithoutAdditionalInfo?.includes(String(l.id)) ?? false,
    }),
  );
  return {
    count: listens.length,
    listens,
    latest_listen_ts: (all[0]?.listened_at as number | undefined) ?? 0,
    oldest_listen_ts: (all.at(-1)?.listened_at as number | undefined) ?? 0,
    user_id: account.login,
  };
}
