import { createHash } from 'node:crypto';

import { isoAt, itemAt, type Rng, SEED_EPOCH_MS, WORDS } from '../prng.js';
import { laterThan } from '../seeding.js';
import type { Account, CollectionSpec, SimContext, SimItem } from '../simulator-context.js';

/**
 * GitHub's data in the simulator's compact model (snake_case fields named as in the REST
 * API, so the control API patches `description`, `stargazers_count`, `state` ...), and
 * the functions that render it in the REST API's full shape.
 */

const LANGUAGES = ['TypeScript', 'Go', 'Rust', 'Python', 'JavaScript', 'Java', 'C', 'Ruby', 'Kotlin', null] as const;
const LICENSES = ['mit', 'apache-2.0', 'gpl-3.0', 'bsd-3-clause', null] as const;
const LICENSE_NAMES: Record<string, [string, string]> = {
  mit: ['MIT License', 'MIT'],
  'apache-2.0': ['Apache License 2.0', 'Apache-2.0'],
  'gpl-3.0': ['GNU General Public License v3.0', 'GPL-3.0'],
  'bsd-3-clause': ['BSD 3-Clause "New" or "Revised" License', 'BSD-3-Clause'],
};
const LABELS = ['bug', 'enhancement', 'documentation', 'good first issue', 'question', 'performance'] as const;
const OTHER_OWNERS = [
  'torvalds',
  'gaearon',
  'sindresorhus',
  'tj',
  'mitchellh',
  'yyx990803',
  'kentcdodds',
  'addyosmani',
];

const DAY = 86_400_000;

export interface RepoItem extends SimItem {
  id: number;
  name: string;
  owner_login: string;
  owner_id: number;
  private: boolean;
  description: string | null;
  homepage: string | null;
  language: string | null;
  license: string | null;
  fork: boolean;
  archived: boolean;
  topics: string[];
  default_branch: string;
  size: number;
  stargazers_count: number;
  forks_count: number;
  open_issues_count: number;
  created_at: string;
  updated_at: string;
  pushed_at: string;
}

function repoName(rng: Rng, index: number): string {
  return `${rng.pick(WORDS)}-${rng.pick(WORDS)}-${index + 1}`;
}

function generateRepo(rng: Rng, id: number, index: number, ownerLogin: string, ownerId: number): RepoItem {
  const created = SEED_EPOCH_MS - rng.int(30, 2000) * DAY;
  const updated = created + rng.int(0, 700) * DAY + rng.int(0, DAY);
  const topics = rng.bool(0.6) ? [...new Set([rng.pick(WORDS), rng.pick(WORDS)])] : [];
  return {
    id,
    name: repoName(rng, index),
    owner_login: ownerLogin,
    owner_id: ownerId,
    private: rng.bool(0.25),
    description: rng.bool(0.85) ? `A ${rng.words(rng.int(3, 8))}` : null,
    homepage: rng.bool(0.2) ? `https://${ownerLogin}.github.io/` : null,
    language: rng.pick(LANGUAGES),
    license: rng.pick(LICENSES),
    fork: rng.bool(0.15),
    archived: rng.bool(0.05),
    topics,
    default_branch: rng.bool(0.8) ? 'main' : 'master',
    size: rng.int(10, 90_000),
    stargazers_count: rng.int(0, 5000),
    forks_count: rng.int(0, 800),
    open_issues_count: rng.int(0, 60),
    created_at: isoAt(created),
    updated_at: isoAt(updated),
    pushed_at: isoAt(updated - rng.int(0, 3_600_000)),
  };
}

export interface StarItem extends RepoItem {
  starred_at: string;
}

export interface IssueItem extends SimItem {
  id: number;
  number: number;
  title: string;
  body: string | null;
  state: 'open' | 'closed';
  state_reason: 'completed' | 'not_planned' | 'reopened' | null;
  labels: string[];
  comments: number;
  locked: boolean;
  author_login: string;
  author_id: number;
  created_at: string;
  updated_at: string;
  closed_at: string | null;
  /** The repository it belongs to (a snapshot taken when the issue was generated). */
  repository: RepoItem;
}

const touchRepo = (item: SimItem, now: number, kind: 'create' | 'update') => {
  item.updated_at = laterThan(item.updated_at as string, now);
  if (kind === 'create') {
    item.created_at = item.updated_at;
    item.pushed_at = item.updated_at;
  }
};

/** Ids are unique across accounts: the account id in the high digits, the item index below. */
const itemId = (account: Account, index: number) => account.id * 100_000_000 + index + 1;

export const githubCollections: Record<string, CollectionSpec> = {
  repos: {
    defaultCount: 42,
    generate: (_ctx: SimContext, account, rng, index) =>
      generateRepo(rng, itemId(account, index), index, account.login, account.id),
    stamp: touchRepo,
    readOnly: ['owner_login', 'owner_id', 'created_at', 'updated_at'],
  },
  starred: {
    defaultCount: 35,
    generate(_ctx, account, rng, index): StarItem {
      const ownerIndex = rng.int(0, OTHER_OWNERS.length - 1);
      const repo = generateRepo(
        rng,
        900_000_000_000 + itemId(account, index),
        index,
        itemAt(OTHER_OWNERS, ownerIndex),
        1000 + ownerIndex,
      );
      repo.private = false;
      return { ...repo, starred_at: isoAt(SEED_EPOCH_MS + index * 7_200_000 + rng.int(0, 7_199_999)) };
    },
    stamp(item, now, kind) {
      touchRepo(item, now, 'update');
      if (kind === 'create') item.starred_at = item.updated_at;
    },
    readOnly: ['owner_login', 'owner_id', 'created_at', 'updated_at', 'starred_at'],
  },
  issues: {
    defaultCount: 12,
    generate(_ctx, account, rng, index): IssueItem {
      const repos = account.collections.get('repos');
      const pool = repos && repos.size ? repos.sorted('id', 'asc', (r) => r.id) : [];
      // Seeded issues pick among the account's first 50 repositories; an account without
      // any gets issues in a repository of someone else.
      const repository: RepoItem = pool.length
        ? (pool[rng.int(0, Math.min(pool.length, 50) - 1)] as RepoItem)
        : generateRepo(rng, 800_000_000_000 + account.id, 0, itemAt(OTHER_OWNERS, 0), 1000);
      const created = SEED_EPOCH_MS + index * 5_400_000 + rng.int(0, 5_399_999);
      const updated = created + rng.int(0, 30 * DAY);
      const closed = rng.bool(0.3);
      const authorIndex = rng.int(0, OTHER_OWNERS.length - 1);
      const byOwner = rng.bool(0.5);
      return {
        id: 700_000_000_000 + itemId(account, index),
        number: index + 1,
        title: `${rng.pick(['Fix', 'Add', 'Improve', 'Remove', 'Document'])} ${rng.words(rng.int(2, 6))}`,
        body: rng.bool(0.9) ? rng.words(rng.int(10, 40)) : null,
        state: closed ? 'closed' : 'open',
        state_reason: closed ? 'completed' : null,
        labels: rng.bool(0.7) ? [...new Set([rng.pick(LABELS), rng.pick(LABELS)])] : [],
        comments: rng.int(0, 25),
        locked: false,
        author_login: byOwner ? account.login : itemAt(OTHER_OWNERS, authorIndex),
        author_id: byOwner ? account.id : 1000 + authorIndex,
        created_at: isoAt(created),
        updated_at: isoAt(updated),
        closed_at: closed ? isoAt(updated) : null,
        repository: { ...repository },
      };
    },
    stamp(item, now, kind) {
      item.updated_at = laterThan(item.updated_at as string, now);
      if (kind === 'create') {
        // A new issue was never closed before: no closed_at or state_reason left from generation.
        item.created_at = item.updated_at;
        item.closed_at = item.state === 'closed' ? item.updated_at : null;
        item.state_reason = item.state === 'closed' ? 'completed' : null;
      } else if (item.state === 'closed' && !item.closed_at) {
        item.closed_at = item.updated_at;
        item.state_reason ??= 'completed';
      } else if (item.state === 'open' && item.closed_at) {
        item.closed_at = null;
        item.state_reason = 'reopened';
      }
    },
    readOnly: ['number', 'repository', 'created_at', 'updated_at', 'closed_at', 'author_login', 'author_id'],
  },
};

// ---- rendering in the REST API's shape ----

const nodeId = (kind: string, id: number) => Buffer.from(`0${kind.length}:${kind}${id}`).toString('base64');

export function renderSimpleUser(api: string, login: string, id: number) {
  const url = `${api}/users/${login}`;
  return {
    login,
    id,
    node_id: nodeId('User', id),
    avatar_url: `https://avatars.githubusercontent.com/u/${id}?v=4`,
    gravatar_id: '',
    url,
    html_url: `https://github.com/${login}`,
    followers_url: `${url}/followers`,
    following_url: `${url}/following{/other_user}`,
    gists_url: `${url}/gists{/gist_id}`,
    starred_url: `${url}/starred{/owner}{/repo}`,
    subscriptions_url: `${url}/subscriptions`,
    organizations_url: `${url}/orgs`,
    repos_url: `${url}/repos`,
    events_url: `${url}/events{/privacy}`,
    received_events_url: `${url}/received_events`,
    type: 'User',
    user_view_type: 'public',
    site_admin: false,
  };
}

/**
 * A `repository` with every field GitHub's description requires. `nulls` (the nullFields
 * quirk): every nullable field the connector might read is null.
 */
export function renderRepo(api: string, r: RepoItem, ownedByViewer: boolean, nulls = false) {
  const full = `${r.owner_login}/${r.name}`;
  const url = `${api}/repos/${full}`;
  const license = r.license && !nulls ? LICENSE_NAMES[r.license] : undefined;
  return {
    id: r.id,
    node_id: nodeId('Repository', r.id),
    name: r.name,
    full_name: full,
    private: r.private,
    owner: renderSimpleUser(api, r.owner_login, r.owner_id),
    html_url: `https://github.com/${full}`,
    description: nulls ? null : r.description,
    fork: r.fork,
    url,
    forks_url: `${url}/forks`,
    keys_url: `${url}/keys{/key_id}`,
    collaborators_url: `${url}/collaborators{/collaborator}`,
    teams_url: `${url}/teams`,
    hooks_url: `${url}/hooks`,
    issue_events_url: `${url}/issues/events{/number}`,
    events_url: `${url}/events`,
    assignees_url: `${url}/assignees{/user}`,
    branches_url: `${url}/branches{/branch}`,
    tags_url: `${url}/tags`,
    blobs_url: `${url}/git/blobs{/sha}`,
    git_tags_url: `${url}/git/tags{/sha}`,
    git_refs_url: `${url}/git/refs{/sha}`,
    trees_url: `${url}/git/trees{/sha}`,
    statuses_url: `${url}/statuses/{sha}`,
    languages_url: `${url}/languages`,
    stargazers_url: `${url}/stargazers`,
    contributors_url: `${url}/contributors`,
    subscribers_url: `${url}/subscribers`,
    subscription_url: `${url}/subscription`,
    commits_url: `${url}/commits{/sha}`,
    git_commits_url: `${url}/git/commits{/sha}`,
    comments_url: `${url}/comments{/number}`,
    issue_comment_url: `${url}/issues/comments{/number}`,
    contents_url: `${url}/contents/{+path}`,
    compare_url: `${url}/compare/{base}...{head}`,
    merges_url: `${url}/merges`,
    archive_url: `${url}/{archive_format}{/ref}`,
    downloads_url: `${url}/downloads`,
    issues_url: `${url}/issues{/number}`,
    pulls_url: `${url}/pulls{/number}`,
    milestones_url: `${url}/milestones{/number}`,
    notifications_url: `${url}/notifications{?since,all,participating}`,
    labels_url: `${url}/labels{/name}`,
    releases_url: `${url}/releases{/id}`,
    deployments_url: `${url}/deployments`,
    created_at: r.created_at,
    updated_at: r.updated_at,
    // Nullable in the description: an empty repository has never been pushed to.
    pushed_at: nulls ? null : r.pushed_at,
    git_url: `git://github.com/${full}.git`,
    ssh_url: `git@github.com:${full}.git`,
    clone_url: `https://github.com/${full}.git`,
    svn_url: `https://github.com/${full}`,
    homepage: nulls ? null : r.homepage,
    size: r.size,
    stargazers_count: r.stargazers_count,
    watchers_count: r.stargazers_count,
    language: nulls ? null : r.language,
    has_issues: true,
    has_projects: true,
    has_downloads: true,
    has_wiki: true,
    has_pages: false,
    has_discussions: false,
    forks_count: r.forks_count,
    mirror_url: null,
    archived: r.archived,
    disabled: false,
    open_issues_count: r.open_issues_count,
    license:
      r.license && license
        ? {
            key: r.license,
            name: license[0],
            spdx_id: license[1],
            url: `${api}/licenses/${r.license}`,
            node_id: nodeId('License', r.license.length),
          }
        : null,
    allow_forking: true,
    is_template: false,
    web_commit_signoff_required: false,
    topics: r.topics,
    visibility: r.private ? 'private' : 'public',
    forks: r.forks_count,
    open_issues: r.open_issues_count,
    watchers: r.stargazers_count,
    default_branch: r.default_branch,
    permissions: ownedByViewer
      ? { admin: true, maintain: true, push: true, triage: true, pull: true }
      : { admin: false, maintain: false, push: false, triage: false, pull: true },
  };
}

const labelId = (name: string) => createHash('sha256').update(name).digest().readUInt32BE(0);
const LABEL_COLORS: Record<string, string> = {
  bug: 'd73a4a',
  enhancement: 'a2eeef',
  documentation: '0075ca',
  'good first issue': '7057ff',
  question: 'd876e3',
  performance: 'fbca04',
};

/**
 * An `issue`. `nulls` (the nullFields quirk): body, user (a deleted account: GitHub shows
 * "ghost"; the description allows null) and assignee null, as well as the repository's nullables.
 */
export function renderIssue(api: string, i: IssueItem, assignee: Account, withRepository: boolean, nulls = false) {
  const full = `${i.repository.owner_login}/${i.repository.name}`;
  const url = `${api}/repos/${full}/issues/${i.number}`;
  const assigneeJson = renderSimpleUser(api, assignee.login, assignee.id);
  return {
    url,
    repository_url: `${api}/repos/${full}`,
    labels_url: `${url}/labels{/name}`,
    comments_url: `${url}/comments`,
    events_url: `${url}/events`,
    html_url: `https://github.com/${full}/issues/${i.number}`,
    id: i.id,
    node_id: nodeId('Issue', i.id),
    number: i.number,
    title: i.title,
    user: nulls ? null : renderSimpleUser(api, i.author_login, i.author_id),
    labels: i.labels.map((name) => ({
      id: labelId(name),
      node_id: nodeId('Label', labelId(name)),
      url: `${api}/repos/${full}/labels/${encodeURIComponent(name)}`,
      name,
      color: LABEL_COLORS[name] ?? 'ededed',
      default: name in LABEL_COLORS,
      description: null,
    })),
    state: i.state,
    locked: i.locked,
    assignee: nulls ? null : assigneeJson,
    assignees: [assigneeJson],
    milestone: null,
    comments: i.comments,
    created_at: i.created_at,
    updated_at: i.updated_at,
    closed_at: i.closed_at,
    author_association: i.author_login === i.repository.owner_login ? 'OWNER' : 'CONTRIBUTOR',
    active_lock_reason: null,
    body: nulls ? null : i.body,
    reactions: {
      url: `${url}/reactions`,
      total_count: 0,
      '+1': 0,
      '-1': 0,
      laugh: 0,
      hooray: 0,
      confused: 0,
      heart: 0,
      rocket: 0,
      eyes: 0,
    },
    timeline_url: `${url}/timeline`,
    performed_via_github_app: null,
    state_reason: i.state_reason,
    ...(withRepository
      ? { repository: renderRepo(api, i.repository, i.repository.owner_login === assignee.login, nulls) }
      : {}),
  };
}

/** A `private-user`; with the nullFields quirk every nullable profile field is null. */
export function renderAuthenticatedUser(api: string, a: Account) {
  const nulls = a.quirks.nullFields === true;
  const repos = a.collections.get('repos');
  let publicRepos = 0;
  let privateRepos = 0;
  for (const r of repos?.values() ?? []) {
    if (r.private) privateRepos++;
    else publicRepos++;
  }
  return {
    ...renderSimpleUser(api, a.login, a.id),
    name: nulls ? null : a.name,
    company: null,
    blog: nulls ? null : '',
    location: null,
    email: nulls ? null : a.email,
    hireable: null,
    bio: null,
    twitter_username: null,
    notification_email: nulls ? null : a.email,
    public_repos: publicRepos,
    public_gists: 0,
    followers: 0,
    following: 0,
    created_at: a.createdAt,
    updated_at: a.createdAt,
    private_gists: 0,
    total_private_repos: privateRepos,
    owned_private_repos: privateRepos,
    disk_usage: 0,
    collaborators: 0,
    two_factor_authentication: true,
    plan: { name: 'free', space: 976562499, collaborators: 0, private_repos: 10000 },
  };
}
