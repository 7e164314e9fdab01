import { createHash } from 'node:crypto';

import type { FastifyInstance, FastifyReply } from 'fastify';

import { principalOf, registerApi } from '../api-guard.js';
import { clientCredentials, intParam, str } from '../http.js';
import { randomToken } from '../oauth/oauth-store.js';
import { handleTokenRequest } from '../oauth/token-request.js';
import { isoAt, SEED_EPOCH_MS } from '../prng.js';
import { ChangeError, laterThan } from '../seeding.js';
import { collectionFor, type Provider, type SimContext, type SimItem } from '../simulator-context.js';

/** The API key an account has from the start: derived from its seed, so it is stable across runs. */
export function defaultApiKey(seed: string): string {
  return `demo_key_${createHash('sha256').update(`api-key:${seed}`).digest('base64url').slice(0, 24)}`;
}

/**
 * `demo` ("Demo Notes"): a small, standards-only source. RFC 6749 token endpoint, RFC 7009 revocation,
 * RFC 8414 metadata, RFC 9207 `iss` on authorization responses; an API with a profile
 * and a cursor-paginated item list.
 */
export function demoProvider(): Provider {
  const scopes = { profile: 'See your name and email address', 'notes.read': 'Read your notes' };

  const unauthorized = (reply: FastifyReply, kind: 'missing' | 'invalid' | 'expired') => {
    if (kind === 'missing') {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer realm="demo"')
        .send({ error: 'unauthorized', error_description: 'Bearer token required.' });
    }
    const description = kind === 'expired' ? 'The access token expired.' : 'The access token is invalid or revoked.';
    return reply
      .code(401)
      .header('www-authenticate', `Bearer realm="demo", error="invalid_token", error_description="${description}"`)
      .send({ error: 'invalid_token', error_description: description });
  };

  return {
    name: 'demo',
    title: 'Demo Notes',
    authorizePath: '/oauth/authorize',
    tokenDefaults: { accessTokenTtlSeconds: 3600, refreshTokenTtlSeconds: 30 * 86_400, codeTtlSeconds: 60 },
    tokenFormat: { accessToken: () => `demo_at_${randomToken()}`, refreshToken: () => `demo_rt_${randomToken()}` },
    scopes,
    issParameter: true,
    defaultAccounts: [
      { login: 'alice', name: 'Alice Example', email: 'alice@example.test' },
      { login: 'bob', name: 'Bob Example', email: 'bob@example.test' },
    ],
    collections: {
      items: {
        defaultCount: 25,
        generate(_ctx, account, rng, index) {
          const created = SEED_EPOCH_MS + index * 3_600_000 + rng.int(0, 3_599_999);
          return {
            id: `itm_${account.id}_${String(index + 1).padStart(8, '0')}`,
            title: rng.words(rng.int(2, 4)),
            body: rng.words(rng.int(8, 24)),
            tags: [rng.pick(['work', 'home', 'ideas', 'reading', 'travel'])],
            createdAt: isoAt(created),
            updatedAt: isoAt(created + rng.int(0, 86_400_000)),
          };
        },
        stamp(item, now, kind) {
          item.updatedAt = laterThan(item.updatedAt as string, now);
          if (kind === 'create') item.createdAt = item.updatedAt;
        },
        readOnly: ['createdAt', 'updatedAt'],
      },
    },
    unauthorized,
    throttled(reply, storm) {
      return reply
        .code(429)
        .header('retry-after', String(storm.retryAfterSeconds))
        .send({ error: 'rate_limited', error_description: 'Too many requests; retry after the Retry-After delay.' });
    },
    // Personal API keys for the same API (the broker's `demo-keys` integration): each
    // default account has one derived from its seed, more can be minted.
    onAccountCreated(ctx, account) {
      ctx.store.addApiKey(defaultApiKey(account.seed), account.id, Object.keys(scopes));
    },
    controlRoutes(sim: FastifyInstance, ctx: SimContext) {
      sim.post<{ Params: { login: string } }>('/accounts/:login/api-keys', async (req, reply) => {
        const account = ctx.accounts.byLoginName(req.params.login);
        if (!account) throw new ChangeError(404, `no account ${req.params.login}`);
        const key = `demo_key_${randomToken(24)}`;
        ctx.store.addApiKey(key, account.id, Object.keys(scopes));
        return reply.code(201).send({ key });
      });
      sim.delete<{ Params: { key: string } }>('/api-keys/:key', async (req, reply) => {
        if (!ctx.store.revokeApiKey(req.params.key)) throw new ChangeError(404, 'unknown API key');
        return reply.code(204).send();
      });
    },

    routes(app: FastifyInstance, ctx: SimContext) {
      app.get('/.well-known/oauth-authorization-server', () => ({
        issuer: ctx.url,
        authorization_endpoint: `${ctx.url}/oauth/authorize`,
        token_endpoint: `${ctx.url}/oauth/token`,
        revocation_endpoint: `${ctx.url}/oauth/revoke`,
        scopes_supported: Object.keys(scopes),
        response_types_supported: ['code'],
        response_modes_supported: ['query'],
        grant_types_supported: ['authorization_code', 'refresh_token'],
        code_challenge_methods_supported: ['S256'],
        token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
        revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
        authorization_response_iss_parameter_supported: true,
      }));

      app.post('/oauth/token', async (req, reply) => {
        reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
        const outcome = handleTokenRequest(ctx, req);
        if (!outcome.ok) {
          if (outcome.error === 'invalid_client') {
            if (outcome.usedBasic) reply.header('www-authenticate', 'Basic realm="demo"');
            return reply.code(401).send({ error: 'invalid_client', error_description: outcome.description });
          }
          return reply.code(400).send({ error: outcome.error, error_description: outcome.description });
        }
        const t = outcome.tokens;
        return {
          access_token: t.accessToken,
          token_type: 'Bearer',
          expires_in: t.expiresIn,
          refresh_token: t.refreshToken,
          scope: t.scopes.join(' '),
        };
      });

      // RFC 7009: 200 whether or not the token was known; 401 for a bad client.
      app.post('/oauth/revoke', async (req, reply) => {
        const creds = clientCredentials(req);
        const client = ctx.store.authenticateClient(creds.id, creds.secret);
        if (!client) return reply.code(401).send({ error: 'invalid_client' });
        const token = str(req.body, 'token');
        if (!token) return reply.code(400).send({ error: 'invalid_request', error_description: 'token is required.' });
        ctx.store.revokeToken(client, token);
        return reply.code(200).send();
      });

      registerApi(app, ctx, (api) => {
        const requireScope = (reply: FastifyReply, have: string[], scope: string) => {
          if (have.includes(scope)) return undefined;
          return reply
            .code(403)
            .header('www-authenticate', `Bearer realm="demo", error="insufficient_scope", scope="${scope}"`)
            .send({ error: 'insufficient_scope', error_description: `This request needs the ${scope} scope.` });
        };

        api.get('/api/profile', async (req, reply) => {
          const { account, scopes: granted } = principalOf(req);
          const refused = requireScope(reply, granted, 'profile');
          if (refused) return refused;
          return {
            id: String(account.id),
            username: account.login,
            name: account.name,
            email: account.email,
            createdAt: account.createdAt,
          };
        });

        // Items in id order; the cursor is the last id seen, so items added, changed or
        // deleted between pages never shift what the next page holds.
        api.get('/api/items', async (req, reply) => {
          const { account, scopes: granted } = principalOf(req);
          const refused = requireScope(reply, granted, 'notes.read');
          if (refused) return refused;
          const limit = intParam(req.query, 'limit', 20);
          if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
            return reply.code(400).send({ error: 'invalid_request', error_description: 'limit must be 1..100.' });
          }
          const cursor = str(req.query, 'cursor');
          let after = '';
          if (cursor) {
            const decoded = Buffer.from(cursor, 'base64url').toString('utf8');
            if (!decoded.startsWith('after:'))
              return reply.code(400).send({ error: 'invalid_request', error_description: 'Invalid cursor.' });
            after = decoded.slice(6);
          }
          const all = collectionFor(account, 'items').sorted('id', 'asc', (i) => String(i.id));
          let start = 0;
          if (after) {
            // First index with id > after (binary search over the sorted view).
            let lo = 0;
            let hi = all.length;
            while (lo < hi) {
              const mid = (lo + hi) >> 1;
              const item = all[mid];
              if (item !== undefined && String(item.id) <= after) lo = mid + 1;
              else hi = mid;
            }
            start = lo;
          }
          const page: SimItem[] = all.slice(start, start + limit);
          const last = page.at(-1);
          const more = start + limit < all.length;
          return {
            items: page,
            nextCursor: more && last ? Buffer.from(`after:${String(last.id)}`).toString('base64url') : null,
          };
        });
      });
    },
  };
}
