import { randomBytes } from 'node:crypto';

import type { FastifyInstance, FastifyReply } from 'fastify';

import { newCounters } from '../counters.js';
import { bearerToken } from '../http.js';
import { parseQuirks } from '../quirks.js';
import { addItem, ChangeError, createAccount, deleteItem, seedAccount, updateItem } from '../seeding.js';
import type { Account, SimContext } from '../simulator-context.js';
import type { StormConfig } from '../throttle.js';

/**
 * The control API under /_sim/: not part of any source's real API. Tests, benchmarks and
 * the demo use it to register clients, create accounts, seed and change data, expire
 * tokens, start storms, configure webhooks and read counters. When a control token is
 * configured, every call needs `Authorization: Bearer <control token>`.
 */
export function registerControl(app: FastifyInstance, ctx: SimContext, controlToken: string | undefined): void {
  void app.register(
    (sim, _options, registered) => {
      sim.addHook('onRequest', async (req, reply) => {
        if (controlToken && bearerToken(req) !== controlToken) {
          return reply.code(401).send({ error: 'control token required' });
        }
        return undefined;
      });
      sim.setErrorHandler((err, _req, reply) => {
        if (err instanceof ChangeError) return reply.code(err.status).send({ error: err.message });
        const status = (err as { statusCode?: number }).statusCode ?? 500;
        return reply.code(status).send({ error: (err as Error).message });
      });

      const body = (b: unknown): Record<string, unknown> =>
        b && typeof b === 'object' ? (b as Record<string, unknown>) : {};
      const account = (login: string): Account => {
        const a = ctx.accounts.byLoginName(login);
        if (!a) throw new ChangeError(404, `no account ${login}`);
        return a;
      };
      // Counts name collections (or per-item settings); a typo must not silently seed defaults.
      const seedCounts = (value: unknown): Record<string, number> => {
        if (value === undefined) return {};
        if (!value || typeof value !== 'object') throw new ChangeError(400, 'counts must be an object');
        const known = [...Object.keys(ctx.provider.collections), ...(ctx.provider.seedSettings ?? [])];
        for (const [k, v] of Object.entries(value)) {
          if (!known.includes(k))
            throw new ChangeError(400, `unknown count ${k}; this source has: ${known.join(', ')}`);
          if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 1_000_000)
            throw new ChangeError(400, `${k} must be an integer 0..1000000`);
        }
        return value as Record<string, number>;
      };
      const counts = (a: Account) => Object.fromEntries([...a.collections].map(([k, c]) => [k, c.size]));
      const describe = (a: Account) => ({
        id: a.id,
        login: a.login,
        name: a.name,
        email: a.email,
        seed: a.seed,
        counts: counts(a),
      });

      sim.get('/state', () => ({
        provider: ctx.provider.name,
        url: ctx.url,
        accounts: ctx.accounts.all().map(describe),
        clients: [...ctx.store.clients.values()].map((c) => ({
          client_id: c.clientId,
          redirect_uris: c.redirectUris,
          name: c.name,
        })),
        settings: { ...ctx.store.settings, rateLimit: ctx.rateLimit, latencyMs: ctx.latency.ms },
        storm: ctx.throttle.describe(),
        webhooks: ctx.webhooks.config
          ? { url: ctx.webhooks.config.url, events: ctx.webhooks.config.events ?? null }
          : null,
      }));

      sim.post('/clients', async (req, reply) => {
        const b = body(req.body);
        const redirectUris = b.redirect_uris;
        if (!Array.isArray(redirectUris) || !redirectUris.every((u) => typeof u === 'string' && URL.canParse(u))) {
          throw new ChangeError(400, 'redirect_uris must be an array of absolute URLs');
        }
        const client = ctx.store.registerClient({
          clientId: typeof b.client_id === 'string' ? b.client_id : `sim_${randomBytes(8).toString('hex')}`,
          clientSecret: typeof b.client_secret === 'string' ? b.client_secret : randomBytes(24).toString('base64url'),
          redirectUris: redirectUris as string[],
          name: typeof b.name === 'string' ? b.name : 'Test application',
        });
        return reply.code(201).send({
          client_id: client.clientId,
          client_secret: client.clientSecret,
          redirect_uris: client.redirectUris,
          name: client.name,
        });
      });

      sim.post('/accounts', async (req, reply) => {
        const b = body(req.body);
        if (typeof b.login !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9-_.]{0,38}$/.test(b.login)) {
          throw new ChangeError(400, 'login required (letters, digits, - _ .)');
        }
        if (ctx.accounts.byLoginName(b.login)) throw new ChangeError(409, `account ${b.login} exists`);
        const a = createAccount(ctx, {
          login: b.login,
          password: typeof b.password === 'string' ? b.password : undefined,
          name: typeof b.name === 'string' ? b.name : undefined,
          email: typeof b.email === 'string' ? b.email : undefined,
          seed: typeof b.seed === 'string' ? b.seed : undefined,
          counts: seedCounts(b.counts),
        });
        return reply.code(201).send(describe(a));
      });

      // Replaces the account's quirks (an empty object switches them all off).
      sim.put<{ Params: { login: string } }>('/accounts/:login/quirks', (req) => {
        const a = account(req.params.login);
        a.quirks = parseQuirks(req.body);
        return { login: a.login, quirks: a.quirks };
      });

      sim.post<{ Params: { login: string } }>('/accounts/:login/seed', (req) => {
        const a = account(req.params.login);
        const b = body(req.body);
        const started = performance.now();
        seedAccount(ctx, a, typeof b.seed === 'string' ? b.seed : a.seed, seedCounts(b.counts));
        return { ...describe(a), seedMs: Math.round(performance.now() - started) };
      });

      sim.get<{ Params: { login: string; collection: string } }>('/accounts/:login/:collection', (req) => {
        const a = account(req.params.login);
        const c = a.collections.get(req.params.collection);
        if (!c) throw new ChangeError(404, `unknown collection ${req.params.collection}`);
        return { total: c.size, items: [...c.values()] };
      });

      sim.post<{ Params: { login: string; collection: string } }>('/accounts/:login/:collection', async (req, reply) =>
        reply.code(201).send(addItem(ctx, account(req.params.login), req.params.collection, body(req.body))),
      );
      sim.patch<{ Params: { login: string; collection: string; id: string } }>(
        '/accounts/:login/:collection/:id',
        (req) => updateItem(ctx, account(req.params.login), req.params.collection, req.params.id, body(req.body)),
      );
      sim.delete<{ Params: { login: string; collection: string; id: string } }>(
        '/accounts/:login/:collection/:id',
        (req) => deleteItem(ctx, account(req.params.login), req.params.collection, req.params.id),
      );

      ctx.provider.controlRoutes?.(sim, ctx);

      sim.post('/tokens/expire', (req) => {
        const b = body(req.body);
        return { expired: ctx.store.expireAll(b.includeRefreshTokens === true) };
      });

      sim.patch('/settings', (req) => {
        const b = body(req.body);
        for (const k of ['accessTokenTtlSeconds', 'refreshTokenTtlSeconds', 'codeTtlSeconds'] as const) {
          if (b[k] !== undefined) {
            if (typeof b[k] !== 'number' || b[k] < 0) throw new ChangeError(400, `${k} must be a number >= 0`);
            ctx.store.settings[k] = b[k];
          }
        }
        const rl = b.rateLimit as { limit?: unknown; windowSeconds?: unknown; maxConcurrent?: unknown } | undefined;
        if (rl && typeof rl === 'object') {
          if (typeof rl.limit === 'number' && rl.limit >= 0) ctx.rateLimit.limit = rl.limit;
          if (typeof rl.windowSeconds === 'number' && rl.windowSeconds > 0)
            ctx.rateLimit.windowSeconds = rl.windowSeconds;
          if (typeof rl.maxConcurrent === 'number' && rl.maxConcurrent >= 0)
            ctx.rateLimit.maxConcurrent = rl.maxConcurrent;
        }
        if (b.latencyMs !== undefined) {
          if (typeof b.latencyMs !== 'number' || b.latencyMs < 0)
            throw new ChangeError(400, 'latencyMs must be a number >= 0');
          ctx.latency.ms = b.latencyMs;
        }
        return { ...ctx.store.settings, rateLimit: ctx.rateLimit, latencyMs: ctx.latency.ms };
      });

      sim.put('/storm', (req) => {
        const b = body(req.body) as Partial<StormConfig>;
        const config: StormConfig = {
          retryAfterSeconds: typeof b.retryAfterSeconds === 'number' ? b.retryAfterSeconds : 1,
          ...(typeof b.everyNth === 'number' && b.everyNth >= 1 ? { everyNth: Math.floor(b.everyNth) } : {}),
          ...(typeof b.durationSeconds === 'number' && b.durationSeconds > 0
            ? { durationSeconds: b.durationSeconds }
            : {}),
          ...(b.status === 403 || b.status === 429 ? { status: b.status } : {}),
          ...(b.kind === 'primary' || b.kind === 'secondary' ? { kind: b.kind } : {}),
        };
        ctx.throttle.start(config);
        return ctx.throttle.describe();
      });
      sim.delete('/storm', () => {
        ctx.throttle.stop();
        return ctx.throttle.describe();
      });

      sim.get('/counters', () => ctx.counters);
      sim.delete('/counters', () => {
        Object.assign(ctx.counters, newCounters());
        return ctx.counters;
      });

      sim.put('/webhooks', (req) => {
        const b = body(req.body);
        if (typeof b.url !== 'string' || !URL.canParse(b.url) || typeof b.secret !== 'string' || !b.secret) {
          throw new ChangeError(400, 'url (absolute) and secret required');
        }
        const events = Array.isArray(b.events) ? (b.events as string[]) : undefined;
        ctx.webhooks.configure({ url: b.url, secret: b.secret, ...(events ? { events } : {}) });
        // GitHub pings a hook when it is created.
        ctx.webhooks.emit('ping', {
          zen: 'Keep it logically awesome.',
          hook_id: ctx.webhooks.hookIdentifier,
          hook: {
            type: 'App',
            id: ctx.webhooks.hookIdentifier,
            active: true,
            events: events ?? ['*'],
            config: { url: b.url, content_type: 'json' },
          },
        });
        return { url: b.url, events: events ?? null };
      });
      sim.delete('/webhooks', async (_req, reply: FastifyReply) => {
        ctx.webhooks.configure(undefined);
        return reply.code(204).send();
      });
      sim.get('/webhooks/deliveries', async () => {
        await ctx.webhooks.settled();
        return ctx.webhooks.deliveries;
      });
      registered();
    },
    { prefix: '/_sim' },
  );
}
