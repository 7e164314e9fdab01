import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { TestClock } from '@context-gateway/clock/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { obtainTokens } from './obtain-tokens.js';
import { type RunningSimulator, startSimulator } from './server.js';

/** The GitHub simulator's REST API as a sync client sees it, over HTTP. */

const linkRels = (link: string | null) =>
  Object.fromEntries([...(link ?? '').matchAll(/<([^>]+)>; rel="(\w+)"/g)].map((m) => [m[2]!, m[1]!]));

describe('GitHub REST API', () => {
  let sim: RunningSimulator;
  let token: string;
  const login = 'pager';
  const get = (path: string, headers: Record<string, string> = {}, t = token) =>
    fetch(path.startsWith('http') ? path : `${sim.url}${path}`, {
      headers: { authorization: `Bearer ${t}`, ...headers },
    });

  beforeAll(async () => {
    sim = await startSimulator({ provider: 'github' });
    await sim.control.createAccount({ login, counts: { repos: 250, starred: 130, issues: 60 } });
    token = (await obtainTokens(sim, login, ['repo', 'read:user'])).access_token;
  });
  // Stopping waits for the server's open connections; on a busy machine that can pass 5 s.
  afterAll(async () => {
    await sim.stop();
  }, 30_000);

  it('Link pagination walks every repository exactly once', async () => {
    const seen: number[] = [];
    let url: string | undefined = '/user/repos?per_page=100';
    let pages = 0;
    let lastLink = '';
    while (url) {
      const res = await get(url);
      expect(res.status).toBe(200);
      const page = (await res.json()) as Array<{ id: number; full_name: string; owner: { login: string } }>;
      seen.push(...page.map((r) => r.id));
      lastLink = res.headers.get('link') ?? '';
      url = linkRels(lastLink).next;
      pages++;
    }
    expect(pages).toBe(3);
    const source = await sim.control.list<{ id: number }>(login, 'repos');
    expect(new Set(seen).size).toBe(250);
    expect(seen.sort()).toEqual(source.items.map((r) => r.id).sort());
    // The last page points back, never forward.
    expect(linkRels(lastLink)).toEqual({
      prev: expect.stringContaining('page=2'),
      first: expect.stringContaining('page=1'),
    });

    const first = await get('/user/repos');
    const rels = linkRels(first.headers.get('link'));
    expect(rels.last).toContain('page=9');
    expect(((await first.json()) as unknown[]).length).toBe(30);
  });

  it('starred repositories and assigned issues paginate too, in the media types GitHub uses', async () => {
    const res = await get('/user/starred?per_page=100&page=2', { accept: 'application/vnd.github.star+json' });
    const page = (await res.json()) as Array<{ starred_at: string; repo: { full_name: string } }>;
    expect(page).toHaveLength(30);
    expect(page[0]!.starred_at).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(page[0]!.repo.full_name).toMatch(/\//);

    const issues = await sim.control.list<{ state: string }>(login, 'issues');
    const open = issues.items.filter((i) => i.state === 'open').length;
    const all: unknown[] = [];
    let url: string | undefined = '/issues?filter=assigned&state=all&per_page=25';
    while (url) {
      const r = await get(url);
      all.push(...((await r.json()) as unknown[]));
      url = linkRels(r.headers.get('link')).next;
    }
    expect(all).toHaveLength(60);
    const defaults = (await (await get('/issues?per_page=100')).json()) as Array<{
      state: string;
      repository: { full_name: string };
      assignee: { login: string };
    }>;
    expect(defaults).toHaveLength(open);
    expect(defaults.every((i) => i.state === 'open' && i.assignee.login === login && i.repository.full_name)).toBe(
      true,
    );
  });

  it('If-None-Match with the ETag answers 304 without spending rate limit; a change gives a new ETag', async () => {
    const first = await get('/user/repos?per_page=100');
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^W\/".+"$/);
    const remaining = Number(first.headers.get('x-ratelimit-remaining'));
    const again = await get('/user/repos?per_page=100', { 'if-none-match': etag });
    expect(again.status).toBe(304);
    expect(Number(again.headers.get('x-ratelimit-remaining'))).toBe(remaining);

    // A change on another page leaves this page's ETag valid, as with GitHub's content ETags.
    const byName = (await sim.control.list<{ id: number; name: string }>(login, 'repos')).items.sort((a, b) =>
      a.name < b.name ? -1 : 1,
    );
    await sim.control.updateItem(login, 'repos', byName[200]!.id, { description: 'changed elsewhere' });
    expect((await get('/user/repos?per_page=100', { 'if-none-match': etag })).status).toBe(304);

    const repo = byName[0]!;
    await sim.control.updateItem(login, 'repos', repo.id, { description: 'changed' });
    const changed = await get('/user/repos?per_page=100', { 'if-none-match': etag });
    expect(changed.status).toBe(200);
    expect(changed.headers.get('etag')).not.toBe(etag);
  });

  it('sends X-RateLimit-* headers that count down per request', async () => {
    const a = await get('/user');
    const b = await get('/user');
    expect(a.headers.get('x-ratelimit-limit')).toBe('5000');
    expect(a.headers.get('x-ratelimit-resource')).toBe('core');
    expect(Number(b.headers.get('x-ratelimit-remaining'))).toBe(Number(a.headers.get('x-ratelimit-remaining')) - 1);
    expect(Number(b.headers.get('x-ratelimit-used'))).toBe(Number(a.headers.get('x-ratelimit-used')) + 1);
    expect(Number(a.headers.get('x-ratelimit-reset'))).toBeGreaterThan(Date.now() / 1000);
    expect(a.headers.get('x-oauth-scopes')).toBe('repo, read:user');
  });

  it('hides private repositories from a token without the repo scope', async () => {
    const publicOnly = (await obtainTokens(sim, login, ['read:user'])).access_token;
    const repos = (await (await get('/user/repos?per_page=100&page=1', {}, publicOnly)).json()) as Array<{
      private: boolean;
    }>;
    expect(repos.length).toBeGreaterThan(0);
    expect(repos.every((r) => !r.private)).toBe(true);
  });

  it('adds, edits and deletes between syncs show in the list the way GitHub shows them', async () => {
    const before = (await sim.control.list<{ id: number; updated_at: string }>(login, 'repos')).items;
    const victim = before[5]!;
    const edited = before[6]!;
    const added = await sim.control.addItem<{ id: number; name: string }>(login, 'repos', {
      name: 'fresh-repo',
      private: false,
    });
    await sim.control.updateItem(login, 'repos', edited.id, { description: 'edited' });
    await sim.control.deleteItem(login, 'repos', victim.id);

    const res = await get('/user/repos?sort=updated&direction=desc&per_page=100');
    const top = (await res.json()) as Array<{ id: number; name: string; description: string; updated_at: string }>;
    // The most recently changed come first (GitHub's sort=updated; the ETag test edited two more).
    expect(top.slice(0, 4).map((r) => r.id)).toEqual(expect.arrayContaining([added.id, edited.id]));
    expect(top.find((r) => r.id === edited.id)!.description).toBe('edited');
    expect(Date.parse(top.find((r) => r.id === edited.id)!.updated_at)).toBeGreaterThan(Date.parse(edited.updated_at));
    const all: number[] = [];
    for (let page = 1; page <= 3; page++) {
      all.push(
        ...((await (await get(`/user/repos?per_page=100&page=${page}`)).json()) as Array<{ id: number }>).map(
          (r) => r.id,
        ),
      );
    }
    expect(all).toHaveLength(250);
    expect(all).not.toContain(victim.id);
    expect(all).toContain(added.id);
  });

  it('creates an issue through the API: it is assigned to the user, listed and announced', async () => {
    const repo = (await (await get('/user/repos?per_page=1')).json()) as Array<{
      name: string;
      owner: { login: string };
    }>;
    const { name, owner } = repo[0]!;
    const one = await get(`/repos/${owner.login}/${name}`);
    expect(((await one.json()) as { full_name: string }).full_name).toBe(`${owner.login}/${name}`);

    const create = (body: unknown, t = token) =>
      fetch(`${sim.url}/repos/${owner.login}/${name}/issues`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const res = await create({ title: 'Created by an agent', body: 'via the API', labels: ['bug'] });
    expect(res.status).toBe(201);
    const issue = (await res.json()) as { id: number };
    expect(issue).toMatchObject({
      title: 'Created by an agent',
      state: 'open',
      closed_at: null,
      state_reason: null,
      assignee: { login },
      repository: { full_name: `${owner.login}/${name}` },
    });
    const listed = (await (await get('/issues?sort=created&per_page=5')).json()) as Array<{ id: number }>;
    expect(listed[0]!.id).toBe(issue.id);

    expect((await create({ body: 'no title' })).status).toBe(422);
    const readOnly = (await obtainTokens(sim, login, ['read:user'])).access_token;
    expect((await create({ title: 'x' }, readOnly)).status).toBe(404);
    expect((await get('/repos/someone/else')).status).toBe(404);
  });

  it('answers 401 in GitHub shape without a token or with an unknown one', async () => {
    const none = await fetch(`${sim.url}/user`);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ message: 'Requires authentication' });
    const bad = await get('/user', {}, 'ghu_notatoken');
    expect(bad.status).toBe(401);
    expect(await bad.json()).toMatchObject({ message: 'Bad credentials' });
  });

  it('the token endpoint answers form-encoded unless JSON is asked for, and errors with 200', async () => {
    const res = await fetch(`${sim.url}/login/oauth/access_token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: 'nobody', client_secret: 'x', code: 'x' }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/x-www-form-urlencoded');
    expect(new URLSearchParams(await res.text()).get('error')).toBe('incorrect_client_credentials');
  });
});

describe('GitHub rate limits', () => {
  it('the primary limit answers 403 with X-RateLimit-Remaining: 0 once spent', async () => {
    const sim = await startSimulator({ provider: 'github', rateLimit: 3 });
    try {
      const { access_token } = await obtainTokens(sim, 'octocat', ['read:user']);
      const statuses: number[] = [];
      let last: Response | undefined;
      for (let i = 0; i < 4; i++) {
        last = await fetch(`${sim.url}/user`, { headers: { authorization: `Bearer ${access_token}` } });
        statuses.push(last.status);
      }
      expect(statuses).toEqual([200, 200, 200, 403]);
      expect(last!.headers.get('x-ratelimit-remaining')).toBe('0');
      expect(((await last!.json()) as { message: string }).message).toMatch(/API rate limit exceeded/);
    } finally {
      await sim.stop();
    }
  });

  it('a storm throttles every Nth request with Retry-After (secondary limit), then ends', async () => {
    // Starts at the real time: the tokens it issues go through real clients.
    const clock = new TestClock(Date.now());
    const sim = await startSimulator({ provider: 'github', clock });
    try {
      const { access_token } = await obtainTokens(sim, 'octocat', ['read:user']);
      const get = () => fetch(`${sim.url}/user`, { headers: { authorization: `Bearer ${access_token}` } });
      await sim.control.startStorm({ everyNth: 2, retryAfterSeconds: 7, status: 429 });
      const responses = [await get(), await get(), await get(), await get()];
      expect(responses.map((r) => r.status)).toEqual([200, 429, 200, 429]);
      expect(responses[1]!.headers.get('retry-after')).toBe('7');
      expect(((await responses[1]!.json()) as { message: string }).message).toMatch(/secondary rate limit/);

      await sim.control.startStorm({ durationSeconds: 2, retryAfterSeconds: 1, kind: 'primary' });
      const primary = await get();
      expect(primary.status).toBe(403);
      expect(primary.headers.get('x-ratelimit-remaining')).toBe('0');
      clock.advance(2_100);
      expect((await get()).status).toBe(200);
      expect((await sim.control.counters()).throttled).toBe(3);
    } finally {
      await sim.stop();
    }
  });
});

describe('GitHub webhooks', () => {
  let sim: RunningSimulator;
  let receiver: Server;
  const received: Array<{ headers: Record<string, string | string[] | undefined>; body: string }> = [];
  const secret = 'webhook-secret-for-tests';

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        received.push({ headers: req.headers, body });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    sim = await startSimulator({ provider: 'github' });
    await sim.control.configureWebhook({
      url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/github`,
      secret,
    });
  });
  afterAll(async () => {
    await sim.stop();
    await new Promise((r) => receiver.close(r));
  });

  it('signs each delivery with HMAC-SHA256 of the body under the secret', async () => {
    const issue = (
      await sim.control.list<{ id: number; state: string; number: number }>('octocat', 'issues')
    ).items.find((i) => i.state === 'open')!;
    await sim.control.updateItem('octocat', 'issues', issue.id, { state: 'closed' });
    await sim.control.addItem('octocat', 'starred');
    const deliveries = await sim.control.webhookDeliveries();
    expect(deliveries.map((d) => `${d.event}/${d.action ?? ''}`)).toEqual(['ping/', 'issues/closed', 'star/created']);
    expect(deliveries.every((d) => d.status === 204)).toBe(true);

    const closed = received.find((r) => r.headers['x-github-event'] === 'issues')!;
    const expected = `sha256=${createHmac('sha256', secret).update(closed.body).digest('hex')}`;
    expect(closed.headers['x-hub-signature-256']).toBe(expected);
    // The same body under another secret does not verify.
    expect(`sha256=${createHmac('sha256', 'other').update(closed.body).digest('hex')}`).not.toBe(expected);
    expect(closed.headers['x-github-delivery']).toMatch(/^[0-9a-f-]{36}$/);
    const payload = JSON.parse(closed.body) as {
      action: string;
      issue: { number: number; state: string };
      repository: { full_name: string };
      sender: { login: string };
    };
    expect(payload).toMatchObject({
      action: 'closed',
      issue: { number: issue.number, state: 'closed' },
      sender: { login: 'octocat' },
    });
    expect(payload.repository.full_name).toMatch(/^octocat\//);
  });

  it('a deleted repository is announced and gone from the API', async () => {
    const repo = (await sim.control.list<{ id: number }>('octocat', 'repos')).items[0]!;
    await sim.control.deleteItem('octocat', 'repos', repo.id);
    const deliveries = await sim.control.webhookDeliveries();
    expect(deliveries.at(-1)).toMatchObject({ event: 'repository', action: 'deleted', status: 204 });
    const last = received.at(-1)!;
    expect((JSON.parse(last.body) as { repository: { id: number } }).repository.id).toBe(repo.id);
  });
});

describe('GitHub secondary limit on concurrency', () => {
  it('refuses requests beyond the concurrent limit with 403 + Retry-After, and serves again once they finish', async () => {
    const sim = await startSimulator({ provider: 'github', maxConcurrentRequests: 2 });
    try {
      const { access_token } = await obtainTokens(sim, 'octocat', ['read:user']);
      const get = () => fetch(`${sim.url}/user`, { headers: { authorization: `Bearer ${access_token}` } });
      // A slow source keeps the first requests in flight while the others arrive.
      await sim.control.settings({ latencyMs: 1500 });
      const first = [get(), get()];
      // Both are in flight once the simulator has counted them (counting and the
      // concurrency check happen in the same synchronous step).
      while ((await sim.control.counters()).apiRequests < 2) await new Promise((r) => setTimeout(r, 20));
      const extra = await get();
      expect(extra.status).toBe(403);
      expect(extra.headers.get('retry-after')).toBe('1');
      expect(((await extra.json()) as { message: string }).message).toMatch(/secondary rate limit/);
      expect((await Promise.all(first)).map((r) => r.status)).toEqual([200, 200]);
      await sim.control.settings({ latencyMs: 0 });
      expect((await get()).status).toBe(200);
    } finally {
      await sim.stop();
    }
  });
});
