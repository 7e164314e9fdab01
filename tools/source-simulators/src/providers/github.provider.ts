import { createHash, randomBytes } from 'node:crypto';

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

import { principalOf, registerApi } from '../api-guard.js';
import { basicCredentials, intParam, str } from '../http.js';
import { randomBase62 } from '../oauth/oauth-store.js';
import { handleTokenRequest } from '../oauth/token-request.js';
import { addItem, deleteItem } from '../seeding.js';
import {
  type Account,
  collectionFor,
  type Principal,
  type Provider,
  type SimContext,
  type SimItem,
} from '../simulator-context.js';
import {
  githubCollections,
  type IssueItem,
  renderAuthenticatedUser,
  renderIssue,
  renderRepo,
  renderSimpleUser,
  type RepoItem,
  type StarItem,
} from './github.data.js';

const DOCS = 'https://docs.github.com/rest';

/** Per-account primary rate-limit window (GitHub's `core` resource). */
interface Window {
  used: number;
  resetAt: number;
}

/**
 * GitHub: OAuth at /login/oauth/* (token errors answered 200 + {error}, as GitHub does),
 * expiring user tokens with refresh tokens, grant deletion, and the REST endpoints a sync
 * needs with Link pagination, ETags and X-RateLimit-* headers.
 */
export function githubProvider(): Provider {
  const windows = new Map<number, Window>();
  const charged = new WeakMap<FastifyRequest, Window>();
  /** Requests being served per account, for the secondary (concurrency) limit. */
  const inFlight = new Map<number, number>();
  const counted = new WeakMap<FastifyRequest, number>();

  const windowOf = (ctx: SimContext, accountId: number): Window => {
    const now = ctx.clock.now();
    let w = windows.get(accountId);
    if (!w || w.resetAt <= now) {
      w = { used: 0, resetAt: now + ctx.rateLimit.windowSeconds * 1000 };
      windows.set(accountId, w);
    }
    return w;
  };

  const rateHeaders = (reply: FastifyReply, ctx: SimContext, w: Window) =>
    reply
      .header('x-ratelimit-limit', String(ctx.rateLimit.limit))
      .header('x-ratelimit-remaining', String(Math.max(0, ctx.rateLimit.limit - w.used)))
      .header('x-ratelimit-reset', String(Math.ceil(w.resetAt / 1000)))
      .header('x-ratelimit-used', String(w.used))
      .header('x-ratelimit-resource', 'core');

  /**
   * GitHub's conditional requests: a weak ETag over everything the answer depends on; a
   * matching If-None-Match → 304 without a body, not charged to the rate limit. The
   * fingerprint is the body itself, or for lists the identities of the page's items (an
   * item changes identity when it changes), so a 304 costs no rendering at all.
   */
  const notModified = (
    req: FastifyRequest,
    reply: FastifyReply,
    ctx: SimContext,
    principal: Principal,
    fingerprint: string,
  ): boolean => {
    const etag = `W/"${createHash('sha256')
      .update(`${principal.account.id}\n${principal.scopes.join(' ')}\n${req.headers.accept ?? ''}\n${req.url}\n`)
      .update(fingerprint)
      .digest('hex')}"`;
    reply
      .header('etag', etag)
      .header('cache-control', 'private, max-age=60, s-maxage=60')
      .header('vary', 'Accept, Authorization, Cookie, X-GitHub-OTP');
    const inm = req.headers['if-none-match'];
    if (!inm || !inm.split(',').some((t) => t.trim().replace(/^W\//, '') === etag.replace(/^W\//, ''))) return false;
    ctx.counters.notModified++;
    const w = charged.get(req);
    if (w) {
      w.used = Math.max(0, w.used - 1);
      rateHeaders(reply, ctx, w);
    }
    void reply.code(304).send();
    return true;
  };

  const sendJson = (reply: FastifyReply, json: string | Buffer) =>
    reply.header('content-type', 'application/json; charset=utf-8').send(json);

  /**
   * A page's fingerprint: how many items the list has (Link's `last`) and which objects are
   * on it. With the `etagOverBodyOnly` quirk the length is left out (-1), as GitHub's ETag
   * covers the body only: a page added after a full last page leaves that page's ETag as it was.
   */
  const serials = new WeakMap<object, number>();
  let nextSerial = 1;
  const pageFingerprint = (total: number, page: readonly object[]) =>
    `${total}:${page
      .map((item) => {
        let s = serials.get(item);
        if (s === undefined) {
          s = nextSerial++;
          serials.set(item, s);
        }
        return s;
      })
      .join(',')}`;

  /** page/per_page slicing with GitHub's Link header (prev, next, last, first). */
  const paginate = <T>(
    req: FastifyRequest,
    reply: FastifyReply,
    ctx: SimContext,
    all: readonly T[],
  ): T[] | undefined => {
    const perPageRaw = intParam(req.query, 'per_page', 30);
    const pageRaw = intParam(req.query, 'page', 1);
    if (Number.isNaN(perPageRaw) || Number.isNaN(pageRaw)) {
      void reply.code(422).send({ message: 'Validation Failed', documentation_url: DOCS, status: '422' });
      return undefined;
    }
    // GitHub clamps rather than refuses: per_page to 1..100, page to >= 1.
    const perPage = Math.min(100, Math.max(1, perPageRaw));
    const page = Math.max(1, pageRaw);
    const last = Math.max(1, Math.ceil(all.length / perPage));
    const link = (p: number) => {
      const u = new URL(req.url, ctx.url);
      u.searchParams.set('page', String(p));
      if (u.searchParams.has('per_page')) u.searchParams.set('per_page', String(perPage));
      // GitHub echoes the query as sent: `affiliation=owner,collaborator` keeps its commas.
      const raw = principalOf(req).account.quirks.rawCommasInLinks;
      return raw ? u.toString().replace(/%2C/gi, ',') : u.toString();
    };
    const rels: string[] = [];
    if (page > 1) rels.push(`<${link(Math.min(page - 1, last))}>; rel="prev"`);
    if (page < last) rels.push(`<${link(page + 1)}>; rel="next"`, `<${link(last)}>; rel="last"`);
    if (page > 1) rels.push(`<${link(1)}>; rel="first"`);
    if (rels.length) reply.header('link', rels.join(', '));
    return all.slice((page - 1) * perPage, page * perPage);
  };

  const direction = (req: FastifyRequest, fallback: 'asc' | 'desc'): 'asc' | 'desc' | undefined => {
    const d = str(req.query, 'direction');
    if (d === undefined) return fallback;
    return d === 'asc' || d === 'desc' ? d : undefined;
  };

  const validationFailed = (reply: FastifyReply, field: string) =>
    reply.code(422).send({
      message: 'Validation Failed',
      errors: [{ resource: 'Search', field, code: 'invalid' }],
      documentation_url: DOCS,
      status: '422',
    });

  const isoParam = (req: FastifyRequest, name: string): number | undefined | null => {
    const v = str(req.query, name);
    if (v === undefined) return undefined;
    const t = Date.parse(v);
    return Number.isNaN(t) ? null : t;
  };

  // Rendered JSON per item object, as UTF-8 bytes (items are replaced, never mutated, when
  // they change), so serving 100k records costs copying bytes rather than rebuilding ~90
  // fields per record, joining ~500 KB strings and encoding them again for the socket: the
  // simulator shares the machine with the sync it feeds, and its CPU is not the sync's.
  // One cache per rendering: with the nullFields quirk an item renders with its nullables null.
  const caches = () => [new WeakMap<object, Buffer>(), new WeakMap<object, Buffer>()] as const;
  const repoJson = caches();
  const starJson = caches();
  const issueJson = caches();
  const cachedJson = (cache: WeakMap<object, Buffer>, item: object, render: () => unknown) => {
    let json = cache.get(item);
    if (json === undefined) {
      json = Buffer.from(JSON.stringify(render()));
      cache.set(item, json);
    }
    return json;
  };
  const OPEN = Buffer.from('[');
  const COMMA = Buffer.from(',');
  const CLOSE = Buffer.from(']');
  const CLOSE_OBJECT = Buffer.from('}');
  const jsonArray = (parts: Buffer[]) => {
    const all: Buffer[] = [OPEN];
    parts.forEach((part, i) => (i === 0 ? all.push(part) : all.push(COMMA, part)));
    all.push(CLOSE);
    return Buffer.concat(all);
  };

  /**
   * shiftingPages: when the first page of a listing has been served, the listing changes at
   * its head, as a live account does while the reader is between pages: `insert` adds an item
   * there (one starred, created or assigned meanwhile), `remove` deletes the head item just
   * served (one unstarred, deleted or unassigned meanwhile), shifting later pages left.
   */
  const shiftAfterFirstPage = (
    req: FastifyRequest,
    ctx: SimContext,
    account: Account,
    collection: string,
    page: readonly SimItem[],
  ) => {
    const mode = account.quirks.shiftingPages;
    if (!mode || intParam(req.query, 'page', 1) > 1) return;
    if (mode === 'remove') {
      if (page[0]) deleteItem(ctx, account, collection, String(page[0].id));
      return;
    }
    // Repositories are listed by name: this one sorts first.
    const fields = collection === 'repos' ? { name: `0-inserted-${collectionFor(account, 'repos').nextIndex}` } : {};
    addItem(ctx, account, collection, fields);
  };

  const emitFor = (ctx: SimContext, account: Account) => (event: string, payload: Record<string, unknown>) =>
    ctx.webhooks.emit(event, {
      ...payload,
      sender: renderSimpleUser(ctx.url, account.login, account.id),
      installation: { id: 1, node_id: 'MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ==' },
    });

  return {
    name: 'github',
    title: 'GitHub',
    authorizePath: '/login/oauth/authorize',
    // GitHub's expiring user tokens: 8 hours, refresh tokens 6 months; codes 10 minutes.
    tokenDefaults: { accessTokenTtlSeconds: 28_800, refreshTokenTtlSeconds: 15_897_600, codeTtlSeconds: 600 },
    tokenFormat: { accessToken: () => `ghu_${randomBase62(36)}`, refreshToken: () => `ghr_${randomBase62(76)}` },
    scopes: {
      repo: 'Full control of private repositories',
      'repo:status': 'Access commit status',
      public_repo: 'Access public repositories',
      'read:user': 'Read all user profile data',
      'user:email': 'Access user email addresses (read-only)',
      'user:follow': 'Follow and unfollow users',
      user: 'Update all user data',
      'read:org': 'Read org and team membership, read org projects',
      gist: 'Create gists',
      notifications: 'Access notifications',
      workflow: 'Update GitHub Action workflows',
      'admin:repo_hook': 'Full control of repository hooks',
      'read:project': 'Read access of projects',
    },
    issParameter: false,
    defaultAccounts: [
      { login: 'octocat', id: 583231, name: 'The Octocat', email: 'octocat@github.com' },
      { login: 'alice', name: 'Alice Example', email: 'alice@example.test' },
    ],
    collections: githubCollections,

    unauthorized(reply, kind) {
      return reply
        .code(401)
        .header('content-type', 'application/json; charset=utf-8')
        .send(
          kind === 'missing'
            ? {
                message: 'Requires authentication',
                documentation_url: `${DOCS}/users/users#get-the-authenticated-user`,
                status: '401',
              }
            : { message: 'Bad credentials', documentation_url: DOCS, status: '401' },
        );
    },

    throttled(reply, storm, ctx) {
      const status = storm.status ?? 403;
      if (storm.kind === 'primary') {
        return reply
          .code(status)
          .header('x-ratelimit-limit', String(ctx.rateLimit.limit))
          .header('x-ratelimit-remaining', '0')
          .header('x-ratelimit-reset', String(Math.ceil(ctx.clock.now() / 1000 + storm.retryAfterSeconds)))
          .header('x-ratelimit-used', String(ctx.rateLimit.limit))
          .header('x-ratelimit-resource', 'core')
          .send({
            message: 'API rate limit exceeded for user.',
            documentation_url: `${DOCS}/overview/rate-limits-for-the-rest-api`,
            status: String(status),
          });
      }
      return reply
        .code(status)
        .header('retry-after', String(storm.retryAfterSeconds))
        .send({
          message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.',
          documentation_url: `${DOCS}/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits`,
          status: String(status),
        });
    },

    afterAuth(req, reply, principal, ctx) {
      const w = windowOf(ctx, principal.account.id);
      reply
        .header('x-oauth-scopes', principal.scopes.join(', '))
        .header('x-github-media-type', 'github.v3; format=json')
        .header('x-github-api-version-selected', '2022-11-28')
        .header('x-github-request-id', randomBytes(8).toString('hex').toUpperCase());
      if (w.used >= ctx.rateLimit.limit) {
        ctx.counters.throttled++;
        rateHeaders(reply, ctx, w);
        return reply.code(403).send({
          message: `API rate limit exceeded for user ID ${principal.account.id}.`,
          documentation_url: `${DOCS}/overview/rate-limits-for-the-rest-api`,
          status: '403',
        });
      }
      const busy = inFlight.get(principal.account.id) ?? 0;
      if (ctx.rateLimit.maxConcurrent > 0 && busy >= ctx.rateLimit.maxConcurrent) {
        // GitHub's secondary limit on concurrent requests: refused, not charged.
        ctx.counters.throttled++;
        rateHeaders(reply, ctx, w);
        return reply
          .code(403)
          .header('retry-after', '1')
          .send({
            message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.',
            documentation_url: `${DOCS}/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits`,
            status: '403',
          });
      }
      inFlight.set(principal.account.id, busy + 1);
      counted.set(req, principal.account.id);
      w.used++;
      charged.set(req, w);
      rateHeaders(reply, ctx, w);
      return undefined;
    },

    onApiResponse(req) {
      const accountId = counted.get(req);
      if (accountId === undefined) return;
      counted.delete(req);
      inFlight.set(accountId, (inFlight.get(accountId) ?? 1) - 1);
    },

    onChange(ctx, account, collection, action, item, changed) {
      const emit = emitFor(ctx, account);
      if (collection === 'repos') {
        const repository = renderRepo(ctx.url, item as RepoItem, true);
        emit('repository', { action: action === 'updated' ? 'edited' : action, repository });
      } else if (collection === 'starred' && action !== 'updated') {
        const star = item as StarItem;
        emit('star', {
          action: action === 'created' ? 'created' : 'deleted',
          starred_at: action === 'created' ? star.starred_at : null,
          repository: renderRepo(ctx.url, star, false),
        });
      } else if (collection === 'issues') {
        const issue = item as IssueItem;
        const act =
          action === 'created'
            ? 'opened'
            : action === 'deleted'
              ? 'deleted'
              : changed.includes('state')
                ? issue.state === 'closed'
                  ? 'closed'
                  : 'reopened'
                : 'edited';
        emit('issues', {
          action: act,
          issue: renderIssue(ctx.url, issue, account, false),
          repository: renderRepo(ctx.url, issue.repository, issue.repository.owner_login === account.login),
        });
      }
    },

    routes(app: FastifyInstance, ctx: SimContext) {
      // The token endpoint: answers JSON only when asked (Accept: application/json),
      // otherwise form-encoded; errors come back as 200 with an `error` field.
      app.post('/login/oauth/access_token', async (req, reply) => {
        const outcome = handleTokenRequest(ctx, req);
        let body: Record<string, string | number>;
        if (outcome.ok) {
          const t = outcome.tokens;
          body = {
            access_token: t.accessToken,
            expires_in: t.expiresIn,
            refresh_token: t.refreshToken,
            refresh_token_expires_in: t.refreshTokenExpiresIn,
            scope: t.scopes.join(','),
            token_type: 'bearer',
          };
        } else {
          const [error, description, anchor] =
            outcome.error === 'invalid_client'
              ? [
                  'incorrect_client_credentials',
                  'The client_id and/or client_secret passed are incorrect.',
                  'incorrect-client-credentials',
                ]
              : outcome.reason === 'redirect_uri_mismatch'
                ? [
                    'redirect_uri_mismatch',
                    'The redirect_uri MUST match the registered callback URL for this application.',
                    'redirect-uri-mismatch2',
                  ]
                : outcome.reason?.startsWith('refresh_')
                  ? ['bad_refresh_token', 'The refresh token passed is incorrect or expired.', 'bad-refresh-token']
                  : outcome.error === 'unsupported_grant_type'
                    ? ['unsupported_grant_type', outcome.description, 'unsupported-grant-type']
                    : ['bad_verification_code', 'The code passed is incorrect or expired.', 'bad-verification-code'];
          body = {
            error,
            error_description: description,
            error_uri: `https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#${anchor}`,
          };
        }
        reply.header('cache-control', 'no-store');
        if ((req.headers.accept ?? '').includes('application/json')) return reply.code(200).send(body);
        return reply
          .code(200)
          .header('content-type', 'application/x-www-form-urlencoded; charset=utf-8')
          .send(new URLSearchParams(Object.entries(body).map(([k, v]): [string, string] => [k, String(v)])).toString());
      });

      // Deleting an app authorization (every token of the user for this app) or one token.
      const revoke =
        (scope: 'grant' | 'token') =>
        async (req: FastifyRequest<{ Params: { client_id: string } }>, reply: FastifyReply) => {
          const basic = basicCredentials(req);
          const client =
            basic && basic.id === req.params.client_id
              ? ctx.store.authenticateClient(basic.id, basic.secret)
              : undefined;
          if (!client)
            return reply.code(401).send({ message: 'Bad credentials', documentation_url: DOCS, status: '401' });
          const token = str(req.body, 'access_token');
          const owner = token ? ctx.store.tokenOwner(token) : undefined;
          if (!token || !owner || owner.clientId !== client.clientId) {
            return reply.code(404).send({ message: 'Not Found', documentation_url: DOCS, status: '404' });
          }
          if (scope === 'grant') ctx.store.revokeGrant(client, owner.accountId);
          else ctx.store.revokeToken(client, token);
          return reply.code(204).send();
        };
      app.delete('/applications/:client_id/grant', revoke('grant'));
      app.delete('/applications/:client_id/token', revoke('token'));

      registerApi(app, ctx, (api) => {
        api.get('/user', async (req, reply) => {
          const p = principalOf(req);
          const json = JSON.stringify(renderAuthenticatedUser(ctx.url, p.account));
          return notModified(req, reply, ctx, p, json) ? reply : sendJson(reply, json);
        });

        api.get('/user/repos', async (req, reply) => {
          const p = principalOf(req);
          reply.header('x-accepted-oauth-scopes', 'repo');
          const sort = str(req.query, 'sort') ?? 'full_name';
          if (!['created', 'updated', 'pushed', 'full_name'].includes(sort)) return validationFailed(reply, 'sort');
          const dir = direction(req, sort === 'full_name' ? 'asc' : 'desc');
          if (!dir) return validationFailed(reply, 'direction');
          const visibility = str(req.query, 'visibility') ?? 'all';
          if (!['all', 'public', 'private'].includes(visibility)) return validationFailed(reply, 'visibility');
          const since = isoParam(req, 'since');
          const before = isoParam(req, 'before');
          if (since === null) return validationFailed(reply, 'since');
          if (before === null) return validationFailed(reply, 'before');
          // Private repositories are visible only with the `repo` scope.
          const seesPrivate = p.scopes.includes('repo');
          const key = sort === 'full_name' ? 'name' : `${sort}_at`;
          let all = collectionFor(p.account, 'repos').sorted(key, dir, (r) => r[key] as string) as RepoItem[];
          if (!seesPrivate || visibility !== 'all' || since !== undefined || before !== undefined) {
            all = all.filter(
              (r) =>
                (seesPrivate || !r.private) &&
                (visibility === 'all' || (visibility === 'private') === r.private) &&
                (since === undefined || Date.parse(r.updated_at) >= since) &&
                (before === undefined || Date.parse(r.updated_at) < before),
            );
          }
          const page = paginate(req, reply, ctx, all);
          if (!page) return reply;
          // A first page answered 304 is served too: the listing changes under the reader all the same.
          if (
            notModified(req, reply, ctx, p, pageFingerprint(p.account.quirks.etagOverBodyOnly ? -1 : all.length, page))
          ) {
            shiftAfterFirstPage(req, ctx, p.account, 'repos', page);
            return reply;
          }
          const nulls = p.account.quirks.nullFields === true;
          const json = jsonArray(
            page.map((r) => cachedJson(repoJson[nulls ? 1 : 0], r, () => renderRepo(ctx.url, r, true, nulls))),
          );
          shiftAfterFirstPage(req, ctx, p.account, 'repos', page);
          return sendJson(reply, json);
        });

        api.get('/user/starred', async (req, reply) => {
          const p = principalOf(req);
          const sort = str(req.query, 'sort') ?? 'created';
          if (sort !== 'created' && sort !== 'updated') return validationFailed(reply, 'sort');
          const dir = direction(req, 'desc');
          if (!dir) return validationFailed(reply, 'direction');
          const key = sort === 'created' ? 'starred_at' : 'updated_at';
          const all = collectionFor(p.account, 'starred').sorted(key, dir, (r) => r[key] as string) as StarItem[];
          const page = paginate(req, reply, ctx, all);
          if (!page) return reply;
          // A first page answered 304 is served too: the listing changes under the reader all the same.
          if (
            notModified(req, reply, ctx, p, pageFingerprint(p.account.quirks.etagOverBodyOnly ? -1 : all.length, page))
          ) {
            shiftAfterFirstPage(req, ctx, p.account, 'starred', page);
            return reply;
          }
          // The star+json media type adds when each repository was starred.
          const withStarredAt = (req.headers.accept ?? '').includes('application/vnd.github.star+json');
          const nulls = p.account.quirks.nullFields === true;
          const parts = page.map((s) => {
            const repo = cachedJson(starJson[nulls ? 1 : 0], s, () => renderRepo(ctx.url, s, false, nulls));
            return withStarredAt
              ? Buffer.concat([
                  Buffer.from(`{"starred_at":${JSON.stringify(s.starred_at)},"repo":`),
                  repo,
                  CLOSE_OBJECT,
                ])
              : repo;
          });
          shiftAfterFirstPage(req, ctx, p.account, 'starred', page);
          return sendJson(reply, jsonArray(parts));
        });

        api.get('/issues', async (req, reply) => {
          const p = principalOf(req);
          const filter = str(req.query, 'filter') ?? 'assigned';
          if (!['assigned', 'created', 'mentioned', 'subscribed', 'repos', 'all'].includes(filter))
            return validationFailed(reply, 'filter');
          const state = str(req.query, 'state') ?? 'open';
          if (!['open', 'closed', 'all'].includes(state)) return validationFailed(reply, 'state');
          const sort = str(req.query, 'sort') ?? 'created';
          if (!['created', 'updated', 'comments'].includes(sort)) return validationFailed(reply, 'sort');
          const dir = direction(req, 'desc');
          if (!dir) return validationFailed(reply, 'direction');
          const since = isoParam(req, 'since');
          if (since === null) return validationFailed(reply, 'since');
          const labels = (str(req.query, 'labels') ?? '').split(',').filter(Boolean);
          const key = sort === 'comments' ? 'comments' : `${sort}_at`;
          let all = collectionFor(p.account, 'issues').sorted(
            key,
            dir,
            (i) => i[key] as string | number,
          ) as IssueItem[];
          if (filter === 'created') all = all.filter((i) => i.author_login === p.account.login);
          if (state !== 'all' || since !== undefined || labels.length) {
            all = all.filter(
              (i) =>
                (state === 'all' || i.state === state) &&
                (since === undefined || Date.parse(i.updated_at) >= since) &&
                labels.every((l) => i.labels.includes(l)),
            );
          }
          const page = paginate(req, reply, ctx, all);
          if (!page) return reply;
          // A first page answered 304 is served too: the listing changes under the reader all the same.
          if (
            notModified(req, reply, ctx, p, pageFingerprint(p.account.quirks.etagOverBodyOnly ? -1 : all.length, page))
          ) {
            shiftAfterFirstPage(req, ctx, p.account, 'issues', page);
            return reply;
          }
          const nulls = p.account.quirks.nullFields === true;
          const json = jsonArray(
            page.map((i) =>
              cachedJson(issueJson[nulls ? 1 : 0], i, () => renderIssue(ctx.url, i, p.account, true, nulls)),
            ),
          );
          shiftAfterFirstPage(req, ctx, p.account, 'issues', page);
          return sendJson(reply, json);
        });

        // A repository the user owns or starred (the simulator knows no others).
        const findRepo = (
          account: Account,
          owner: string,
          name: string,
        ): { repo: RepoItem; owned: boolean } | undefined => {
          for (const [collection, owned] of [
            ['repos', true],
            ['starred', false],
          ] as const) {
            for (const r of collectionFor(account, collection).values() as IterableIterator<RepoItem>) {
              if (r.owner_login === owner && r.name === name) return { repo: r, owned };
            }
          }
          return undefined;
        };
        const notFound = (reply: FastifyReply) =>
          reply.code(404).send({ message: 'Not Found', documentation_url: DOCS, status: '404' });

        api.get<{ Params: { owner: string; repo: string } }>('/repos/:owner/:repo', async (req, reply) => {
          const p = principalOf(req);
          const found = findRepo(p.account, req.params.owner, req.params.repo);
          // GitHub answers 404, not 403, for a private repository the token may not see.
          if (!found || (found.repo.private && !p.scopes.includes('repo'))) return notFound(reply);
          const json = JSON.stringify(renderRepo(ctx.url, found.repo, found.owned));
          return notModified(req, reply, ctx, p, json) ? reply : sendJson(reply, json);
        });

        // Creating an issue (the `github:create_issue` tool): assigned to the authenticated
        // user, so it shows in GET /issues and fires `issues/opened`.
        api.post<{ Params: { owner: string; repo: string } }>('/repos/:owner/:repo/issues', async (req, reply) => {
          const p = principalOf(req);
          const found = findRepo(p.account, req.params.owner, req.params.repo);
          const canWrite =
            found && (p.scopes.includes('repo') || (p.scopes.includes('public_repo') && !found.repo.private));
          if (!found || !canWrite) return notFound(reply);
          const body = (req.body ?? {}) as { title?: unknown; body?: unknown; labels?: unknown };
          if (typeof body.title !== 'string' || !body.title.trim()) {
            return reply.code(422).send({
              message: 'Validation Failed',
              errors: [{ resource: 'Issue', code: 'missing_field', field: 'title' }],
              documentation_url: `${DOCS}/issues/issues#create-an-issue`,
              status: '422',
            });
          }
          const labels = Array.isArray(body.labels)
            ? body.labels.filter((l): l is string => typeof l === 'string')
            : [];
          const issue = addItem(
            ctx,
            p.account,
            'issues',
            {
              title: body.title,
              body: typeof body.body === 'string' ? body.body : null,
              labels,
              state: 'open',
              state_reason: null,
              comments: 0,
            },
            { repository: { ...found.repo }, author_login: p.account.login, author_id: p.account.id, closed_at: null },
          ) as IssueItem;
          return reply
            .code(201)
            .header('location', `${ctx.url}/repos/${found.repo.owner_login}/${found.repo.name}/issues/${issue.number}`)
            .send(renderIssue(ctx.url, issue, p.account, true));
        });

        api.get('/rate_limit', async (req, reply) => {
          const p = principalOf(req);
          const w = windowOf(ctx, p.account.id);
          const core = {
            limit: ctx.rateLimit.limit,
            used: w.used,
            remaining: Math.max(0, ctx.rateLimit.limit - w.used),
            reset: Math.ceil(w.resetAt / 1000),
          };
          return reply.send({ resources: { core }, rate: core });
        });
      });
    },
  };
}
