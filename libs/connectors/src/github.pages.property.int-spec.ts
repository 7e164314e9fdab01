import { validateRecord } from '@context-gateway/record-catalog';
import { githubSchemas as schemas } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';

import type { NormalizedRecord } from './connector.js';
import { GithubConnector, type GithubCursor, githubNormalize } from './github.connector.js';
import { MemoryStore } from './testing/memory-store.js';
import { PageServer } from './testing/page-server.js';

/**
 * Property: any pages valid under GitHub's REST API description (the simulator's schemas,
 * written from it) become, item by item, exactly one catalog-valid record — never a crash,
 * never a lost sibling. Served over real HTTP with Link headers whose URLs keep raw commas,
 * as GitHub's do. Every generated page is first checked against the schema. Then the
 * incremental runs: the same account again (every page answers 304 to its ETag), and the
 * account changed (items removed, edited, added at the head, the page size changed) — the
 * store ends equal to the account, and nothing that exists is ever tombstoned.
 */

// An empty or non-numeric PROPERTY_RUNS must not mean zero runs (a test that checks nothing).
const NUM_RUNS = Math.max(1, Number(process.env.PROPERTY_RUNS) || 60);

// ---- generators, one per schema of github.schemas.ts ----
const text = fc.string({ maxLength: 12, unit: 'grapheme' });
const time = fc
  .date({ min: new Date('2008-01-01T00:00:00Z'), max: new Date('2030-01-01T00:00:00Z'), noInvalidDate: true })
  .map((d) => d.toISOString());
const login = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,10}$/);
const api = 'https://api.github.com';
const user = fc.record({ login, id: fc.nat() }).map(({ login: l, id }) => ({
  login: l,
  id,
  node_id: `U_${id}`,
  avatar_url: `https://avatars.githubusercontent.com/u/${id}`,
  gravatar_id: null,
  url: `${api}/users/${l}`,
  html_url: `https://github.com/${l}`,
  followers_url: `${api}/users/${l}/followers`,
  following_url: `${api}/users/${l}/following{/other_user}`,
  gists_url: `${api}/users/${l}/gists{/gist_id}`,
  starred_url: `${api}/users/${l}/starred{/owner}{/repo}`,
  subscriptions_url: `${api}/users/${l}/subscriptions`,
  organizations_url: `${api}/users/${l}/orgs`,
  repos_url: `${api}/users/${l}/repos`,
  events_url: `${api}/users/${l}/events{/privacy}`,
  received_events_url: `${api}/users/${l}/received_events`,
  type: 'User',
  site_admin: false,
}));
/** The many `*_url` fields a repository must have; only their presence matters to a reader. */
const repoUrls = (u: string) => ({
  ...Object.fromEntries(schemas.REPOSITORY_API_URL_FIELDS.map((k) => [k, `${u}/${k.replace(/_url$/, '')}`])),
  ...Object.fromEntries(schemas.REPOSITORY_TEMPLATE_URL_FIELDS.map((k) => [k, `${u}/${k}{/x}`])),
});
const repository = fc
  .record({
    id: fc.nat(),
    owner: user,
    name: fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/),
    private: fc.boolean(),
    description: fc.option(text, { nil: null }),
    fork: fc.boolean(),
    homepage: fc.option(fc.webUrl(), { nil: null }),
    language: fc.option(text, { nil: null }),
    license: fc.option(
      fc.record({
        key: fc.constantFrom('mit', 'other'),
        name: text,
        url: fc.option(fc.webUrl(), { nil: null }),
        spdx_id: fc.option(text, { nil: null }),
        node_id: fc.string(),
      }),
      { nil: null },
    ),
    counts: fc.nat(10_000),
    default_branch: fc.constantFrom('main', 'master', 'trunk', ''),
    flags: fc.boolean(),
    pushed_at: fc.option(time, { nil: null }),
    created_at: fc.option(time, { nil: null }),
    updated_at: fc.option(time, { nil: null }),
  })
  .map(({ counts, flags, ...r }) => {
    const full = `${r.owner.login}/${r.name}`;
    const u = `${api}/repos/${full}`;
    return {
      ...r,
      node_id: `R_${r.id}`,
      full_name: full,
      html_url: `https://github.com/${full}`,
      url: u,
      ...repoUrls(u),
      mirror_url: null,
      forks: counts,
      forks_count: counts,
      stargazers_count: counts,
      watchers_count: counts,
      watchers: counts,
      size: counts,
      open_issues_count: counts,
      open_issues: counts,
      has_issues: flags,
      has_projects: flags,
      has_wiki: flags,
      has_pages: !flags,
      has_downloads: flags,
      archived: !flags,
      disabled: false,
    };
  });
const star = fc.record({ starred_at: time, repo: repository });
const label = fc.oneof(
  text,
  fc.record({ id: fc.nat(), name: text, color: fc.option(fc.string(), { nil: null }) }, { requiredKeys: [] }),
);
const issue = fc
  .record({
    id: fc.nat(),
    number: fc.integer({ min: 1, max: 100_000 }),
    state: fc.constantFrom('open', 'closed'),
    state_reason: fc.option(fc.constantFrom('completed', 'reopened', 'not_planned', 'duplicate'), { nil: null }),
    title: text,
    body: fc.option(text, { nil: null }),
    user: fc.option(user, { nil: null }),
    labels: fc.array(label, { maxLength: 3 }),
    assignee: fc.option(user, { nil: null }),
    locked: fc.boolean(),
    comments: fc.nat(100),
    pull: fc.boolean(),
    closed_at: fc.option(time, { nil: null }),
    created_at: time,
    updated_at: time,
    repository: fc.option(repository, { nil: undefined }),
  })
  .map(({ pull, ...i }) => {
    const repo = i.repository?.full_name ?? 'octo/unknown';
    const u = `${api}/repos/${repo}/issues/${i.number}`;
    return {
      ...i,
      node_id: `I_${i.id}`,
      url: u,
      repository_url: `${api}/repos/${repo}`,
      labels_url: `${u}/labels{/name}`,
      comments_url: `${u}/comments`,
      events_url: `${u}/events`,
      html_url: `https://github.com/${repo}/issues/${i.number}`,
      milestone: null,
      ...(pull ? { pull_request: { url: u, html_url: u, diff_url: `${u}.diff`, patch_url: `${u}.patch` } } : {}),
    };
  });

const uniqueById = <T extends { id: number }>(items: T[]) => {
  const seen = new Set<number>();
  return items.filter((t) => !seen.has(t.id) && seen.add(t.id));
};
const uniqueStars = <T extends { repo: { id: number } }>(s: T[]) =>
  s.filter((x, i) => s.findIndex((y) => y.repo.id === x.repo.id) === i);
const account = fc.record({
  pageSize: fc.integer({ min: 1, max: 4 }),
  repos: fc.array(repository, { maxLength: 7 }).map(uniqueById),
  stars: fc.array(star, { maxLength: 7 }).map(uniqueStars),
  issues: fc.array(issue, { maxLength: 7 }).map(uniqueById),
});
type Account = typeof account extends fc.Arbitrary<infer A> ? A : never;

/** A listing changed between runs: each item kept, dropped or edited; a few new ones at its head. */
const changed = <T>(items: T[], fresh: fc.Arbitrary<T>, edit: (t: T) => T) =>
  fc
    .tuple(
      fc.array(fc.constantFrom('keep', 'drop', 'edit'), { minLength: items.length, maxLength: items.length }),
      fc.array(fresh, { maxLength: 3 }),
    )
    .map(([fates, added]) => [
      ...added,
      ...items.flatMap((t, i) => (fates[i] === 'drop' ? [] : [fates[i] === 'edit' ? edit(t) : t])),
    ]);
/** An account and the same account changed between two runs. */
const accountAndChange = account.chain((a) =>
  fc
    .record({
      pageSize: fc.integer({ min: 1, max: 4 }),
      repos: changed(a.repos, repository, (r) => ({ ...r, description: `${r.description ?? ''}*` })).map(uniqueById),
      stars: changed(a.stars, star, (x) => ({
        ...x,
        starred_at: new Date(Date.parse(x.starred_at) + 1000).toISOString(),
      })).map(uniqueStars),
      issues: changed(a.issues, issue, (i) => ({ ...i, title: `${i.title}*` })).map(uniqueById),
    })
    .map((b) => ({ a, b })),
);

/** An item as the connector receives it: through JSON. */
const wire = (item: unknown) => JSON.parse(JSON.stringify(item)) as never;
/** What the store holds for an account once synced: every item, as its latest version. */
const expected = (a: Account) =>
  new Map<string, NormalizedRecord>(
    [
      ...a.repos.map((r) => githubNormalize.repository(wire(r))),
      ...a.stars.map((x) => githubNormalize.star(wire(x))),
      ...a.issues.map((i) => githubNormalize.issue(wire(i))),
    ].map((r) => [`${r.type}/${r.externalId}`, r]),
  );

describe('GithubConnector on any pages valid under the REST API description', () => {
  const server = new PageServer();
  beforeAll(() => server.start());
  afterAll(() => server.stop());

  /** GitHub's page/per_page paging with a Link header, its URLs keeping the query's commas as sent. */
  function serve(a: Account) {
    const paged = (all: unknown[], u: URL) => {
      const page = Number(u.searchParams.get('page') ?? 1);
      const last = Math.max(1, Math.ceil(all.length / a.pageSize));
      const link = (p: number) => {
        const next = new URL(u);
        next.searchParams.set('page', String(p));
        return next.toString().replace(/%2C/gi, ',');
      };
      const rels = page < last ? [`<${link(page + 1)}>; rel="next"`, `<${link(last)}>; rel="last"`] : [];
      return {
        body: all.slice((page - 1) * a.pageSize, page * a.pageSize),
        headers: rels.length ? { link: rels.join(', ') } : undefined,
      };
    };
    server.answer = (u) => {
      // Every answer carries an ETag over its body (GitHub's cover the body, not the Link header).
      const conditional = (answer: { body: unknown; headers?: Record<string, string> }) => ({ ...answer, etag: true });
      if (u.pathname === '/user') return conditional({ body: { id: 1, login: 'octocat', name: null, email: null } });
      if (u.pathname === '/user/repos') return conditional(paged(a.repos, u));
      if (u.pathname === '/user/starred') return conditional(paged(a.stars, u));
      if (u.pathname === '/issues') return conditional(paged(a.issues, u));
      return undefined;
    };
  }

  it('every generated item is one valid record, whatever the nulls and pages; incremental runs keep it so', async () => {
    await fc.assert(
      fc.asyncProperty(accountAndChange, async ({ a, b }) => {
        serve(a);
        for (const x of [a, b]) {
          expect(schemas.githubReposPage.safeParse(x.repos).error).toBeUndefined();
          expect(schemas.githubStarredWithDatesPage.safeParse(x.stars).error).toBeUndefined();
          expect(schemas.githubIssuesPage.safeParse(x.issues).error).toBeUndefined();
        }

        const store = new MemoryStore();
        const connector = new GithubConnector();
        const sync = (cursor: GithubCursor | null) => connector.sync(server.context(store), cursor);
        let cursor = await sync(null);
        for (const r of store.live.values()) expect(() => validateRecord(r.type, r.data)).not.toThrow();
        expect(store.skipped).toEqual([]);
        const keys = [
          ...a.repos.map((r) => `code.repository/${r.id}`),
          ...a.stars.map((s) => `code.star/${s.repo.id}`),
          ...a.issues.map((i) => `code.issue/${i.id}`),
        ];
        for (const key of keys) expect({ key, stored: store.live.has(key) }).toEqual({ key, stored: true });
        expect(store.live.size).toBe(1 + keys.length);
        for (const s of a.stars) expect(store.live.get(`code.star/${s.repo.id}`)?.data.starredAt).toBe(s.starred_at);

        /** The store holds exactly the account (and the profile), each item as it is now. */
        const holds = (x: Account) => {
          const want = expected(x);
          expect([...store.live.keys()].filter((k) => k !== 'profile/1').sort()).toEqual([...want.keys()].sort());
          for (const [key, record] of want) expect(store.live.get(key)).toEqual(record);
        };

        // The same account again: every page answers 304 to its ETag; nothing is written.
        const upserts = store.upserts;
        const notModified = server.notModified;
        cursor = await sync(cursor);
        expect(store.upserts).toBe(upserts);
        expect(server.notModified).toBeGreaterThan(notModified);
        expect(store.tombstones.size).toBe(0);
        holds(a);

        // Changed: unchanged pages answer 304, changed ones 200; what exists is never tombstoned.
        serve(b);
        const live = expected(b);
        cursor = await sync(cursor);
        for (const key of store.tombstones) expect({ key, live: live.has(key) }).toEqual({ key, live: false });
        for (const key of live.keys()) expect({ key, stored: store.live.has(key) }).toEqual({ key, stored: true });
        // A second run on it: what the first missed twice (really gone) is now tombstoned.
        cursor = await sync(cursor);
        holds(b);
        expect([cursor.repos?.missed, cursor.starred?.missed, cursor.issues?.missed]).toEqual([
          undefined,
          undefined,
          undefined,
        ]);
        expect(store.skipped).toEqual([]);
      }),
      { numRuns: NUM_RUNS },
    );
  }, 60_000);
});
