import { validateRecord } from '@context-gateway/record-catalog';
import { githubSchemas as schemas } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';

import { GithubConnector } from './github.connector.js';
import { MemoryStore } from './testing/memory-store.js';
import { PageServer, staticTokens } from './testing/page-server.js';

/**
 * Property: any pages valid under GitHub's REST API description (the simulator's schemas,
 * written from it) become, item by item, exactly one catalog-valid record — never a crash,
 * never a lost sibling. Served over real HTTP with Link headers whose URLs keep raw commas,
 * as GitHub's do. Every generated page is first checked against the schema.
 */

const NUM_RUNS = Number(process.env.PROPERTY_RUNS ?? 60);

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
  ...Object.fromEntries(
    [
      'contributors_url',
      'deployments_url',
      'downloads_url',
      'events_url',
      'forks_url',
      'hooks_url',
      'languages_url',
      'merges_url',
      'stargazers_url',
      'subscribers_url',
      'subscription_url',
      'svn_url',
      'tags_url',
      'teams_url',
    ].map((k) => [k, `${u}/${k.replace(/_url$/, '')}`]),
  ),
  ...Object.fromEntries(
    [
      'archive_url',
      'assignees_url',
      'blobs_url',
      'branches_url',
      'collaborators_url',
      'comments_url',
      'commits_url',
      'compare_url',
      'contents_url',
      'git_commits_url',
      'git_refs_url',
      'git_tags_url',
      'git_url',
      'issue_comment_url',
      'issue_events_url',
      'issues_url',
      'keys_url',
      'labels_url',
      'milestones_url',
      'notifications_url',
      'pulls_url',
      'releases_url',
      'ssh_url',
      'statuses_url',
      'trees_url',
      'clone_url',
    ].map((k) => [k, `${u}/${k}{/x}`]),
  ),
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
const account = fc.record({
  pageSize: fc.integer({ min: 1, max: 4 }),
  repos: fc.array(repository, { maxLength: 7 }).map(uniqueById),
  stars: fc
    .array(star, { maxLength: 7 })
    .map((s) => s.filter((x, i) => s.findIndex((y) => y.repo.id === x.repo.id) === i)),
  issues: fc.array(issue, { maxLength: 7 }).map(uniqueById),
});
type Account = typeof account extends fc.Arbitrary<infer A> ? A : never;

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
      if (u.pathname === '/user') return { body: { id: 1, login: 'octocat', name: null, email: null } };
      if (u.pathname === '/user/repos') return paged(a.repos, u);
      if (u.pathname === '/user/starred') return paged(a.stars, u);
      if (u.pathname === '/issues') return paged(a.issues, u);
      return undefined;
    };
  }

  it('every generated item is one valid record, whatever the nulls and pages', async () => {
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(account, async (a) => {
        serve(a);
        expect(schemas.githubReposPage.safeParse(a.repos).error).toBeUndefined();
        expect(schemas.githubStarredWithDatesPage.safeParse(a.stars).error).toBeUndefined();
        expect(schemas.githubIssuesPage.safeParse(a.issues).error).toBeUndefined();

        const store = new MemoryStore();
        await new GithubConnector().sync(
          { baseUrl: server.url, tokens: staticTokens, emit: store.apply, skip: store.skip, http: { maxAttempts: 1 } },
          null,
        );
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
      }),
      { numRuns: NUM_RUNS },
    );
    expect(Date.now() - started).toBeLessThan(20_000);
  }, 30_000);
});
