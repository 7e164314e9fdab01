import type { FastifyInstance, FastifyRequest } from 'fastify';

import { bearerToken } from './http.js';
import type { Principal, SimContext } from './simulator-context.js';

const principals = new WeakMap<FastifyRequest, Principal>();

/** The authenticated account behind a resource API request (set by the guard). */
export function principalOf(req: FastifyRequest): Principal {
  const p = principals.get(req);
  if (!p) throw new Error('resource route registered outside registerApi');
  return p;
}

/** Counts a resource API request (in total and by route) for `/_sim/counters`; returns the counters. */
export function countApiRequest(req: FastifyRequest, ctx: SimContext): SimContext['counters'] {
  const c = ctx.counters;
  c.apiRequests++;
  const route = `${req.method} ${req.routeOptions.url ?? req.url}`;
  c.byRoute[route] = (c.byRoute[route] ?? 0) + 1;
  return c;
}

/**
 * Registers resource API routes behind the checks every source makes: a bearer token
 * that is known, unrevoked and unexpired (401 in the source's shape otherwise), the
 * storm switched on by the control API, and the provider's own extra limits.
 */
export function registerApi(app: FastifyInstance, ctx: SimContext, routes: (api: FastifyInstance) => void): void {
  void app.register((api, _options, registered) => {
    api.addHook('onRequest', async (req, reply) => {
      const c = countApiRequest(req, ctx);
      const check = ctx.store.checkAccessToken(bearerToken(req, ctx.provider.name === 'github'));
      if (check.status !== 'ok') {
        c.unauthorized++;
        return ctx.provider.unauthorized(reply, check.status);
      }
      const account = ctx.accounts.byAccountId(check.accountId);
      if (!account) {
        c.unauthorized++;
        return ctx.provider.unauthorized(reply, 'invalid');
      }
      const storm = ctx.throttle.check();
      if (storm) {
        c.throttled++;
        return ctx.provider.throttled(reply, storm, ctx);
      }
      const principal: Principal = { account, scopes: check.scopes, clientId: check.clientId };
      principals.set(req, principal);
      const answered = ctx.provider.afterAuth?.(req, reply, principal, ctx);
      if (answered) return answered;
      if (ctx.latency.ms > 0) await new Promise((r) => setTimeout(r, ctx.latency.ms));
      return undefined;
    });
    const done = (req: FastifyRequest): Promise<void> => {
      ctx.provider.onApiResponse?.(req);
      return Promise.resolve();
    };
    api.addHook('onResponse', done);
    api.addHook('onRequestAbort', done);
    routes(api);
    registered();
  });
}
