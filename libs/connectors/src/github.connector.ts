import { compact } from './compact.js';
import type { Connector, NormalizedRecord, SyncContext } from './connector.js';
import { type CollectionState, syncCollection } from './paged-collection.js';
import { nextLink, SourceHttp } from './source-http.js';

/** The parts of GitHub's REST objects we read (https://docs.github.com/en/rest). */
interface GhUser {
  id: number;
  login: string;
  name?: string | null;
  email?: string | null;
  avatar_url?: string;
  html_url?: string;
  bio?: string | null;
  created_at?: string;
  updated_at?: string;
}
interface GhRepo {
  id: number;
  name: string;
  full_name: string;
  owner?: { login: string };
  private?: boolean;
  description?: string | null;
  html_url?: string;
  language?: string | null;
  stargazers_count?: number;
  forks_count?: number;
  default_branch?: string;
  archived?: boolean;
  fork?: boolean;
  created_at?: string;
  updated_at?: string;
  pushed_at?: string | null;
}
/** `application/vnd.github.star+json` wraps each repo with the time it was starred. */
type GhStar = GhRepo | { starred_at: string; repo: GhRepo };
interface GhIssue {
  id: number;
  number: number;
  title: string;
  state: string;
  html_url?: string;
  body?: string | null;
  user?: { login: string } | null;
  assignees?: { login: string }[];
  labels?: ({ name?: string } | string)[];
  comments?: number;
  pull_request?: unknown;
  repository?: { full_name: string };
  repository_url?: string;
  created_at?: string;
  updated_at?: string;
  closed_at?: string | null;
}

export interface GithubCursor {
  v: 1;
  profileEtag?: string;
  repos?: CollectionState;
  starred?: CollectionState;
  issues?: CollectionState;
}

const PER_PAGE = 100;

/** GitHub objects → the record catalog's shapes (libs/record-catalog). */
export const githubNormalize = {
  profile: (u: GhUser): NormalizedRecord => {
    return {
      type: 'profile',
      externalId: String(u.id),
      ...(u.updated_at ? { occurredAt: u.updated_at } : {}),
      data: compact({
        source: 'github',
        id: String(u.id),
        displayName: u.name,
        handle: u.login,
        email: u.email,
        url: u.html_url,
        imageUrl: u.avatar_url,
      }),
    };
  },
  repository: (r: GhRepo): NormalizedRecord => {
    return {
      type: 'code.repository',
      externalId: String(r.id),
      ...(r.updated_at ? { occurredAt: r.updated_at } : {}),
      data: compact({
        source: 'github',
        id: String(r.id),
        fullName: r.full_name,
        description: r.description,
        private: r.private ?? false,
        defaultBranch: r.default_branch,
        language: r.language,
        url: r.html_url,
        pushedAt: r.pushed_at,
      }),
    };
  },
  star: (s: GhStar): NormalizedRecord => {
    const repo = 'repo' in s ? s.repo : s;
    const starredAt = 'starred_at' in s ? s.starred_at : undefined;
    return {
      type: 'code.star',
      externalId: String(repo.id),
      ...(starredAt ? { occurredAt: starredAt } : {}),
      data: compact({ source: 'github', repository: repo.full_name, url: repo.html_url, starredAt }),
    };
  },
  issue: (i: GhIssue): NormalizedRecord => {
    const repo = i.repository?.full_name ?? i.repository_url?.split('/repos/')[1] ?? '';
    return {
      type: 'code.issue',
      externalId: String(i.id),
      ...(i.updated_at ? { occurredAt: i.updated_at } : {}),
      // `repository` and `title` are required by the catalog even when empty (GitHub's
      // description allows an empty title), so they are set after compact(), which drops ''.
      data: {
        ...compact({
          source: 'github',
          id: String(i.id),
          number: i.number,
          state: i.state === 'closed' ? 'closed' : 'open',
          pullRequest: i.pull_request !== undefined && i.pull_request !== null,
          author: i.user?.login,
          labels: (i.labels ?? []).map((l) => (typeof l === 'string' ? l : (l.name ?? ''))).filter((l) => l !== ''),
          url: i.html_url,
          createdAt: i.created_at,
          closedAt: i.closed_at,
        }),
        repository: repo,
        title: typeof i.title === 'string' ? i.title : '',
      },
    };
  },
};

const asArray = <T>(body: unknown): T[] => (Array.isArray(body) ? (body as T[]) : []);
const linkNext = (_body: unknown, headers: Headers) => nextLink(headers.get('link'));

/**
 * GitHub: the user's profile, repositories, starred repositories and the issues assigned to
 * them. Every listing is walked with Link pagination and If-None-Match, so an unchanged
 * account costs a handful of 304s (which GitHub does not count against the rate limit).
 */
export class GithubConnector implements Connector {
  readonly integration = 'github';
  readonly produces = ['profile', 'code.repository', 'code.star', 'code.issue'] as const;

  async sync(ctx: SyncContext, cursor: unknown): Promise<GithubCursor> {
    const prev = isGithubCursor(cursor) ? cursor : undefined;
    const http = new SourceHttp(
      ctx.baseUrl,
      ctx.tokens,
      {
        ...ctx.http,
        headers: { accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28', ...ctx.http?.headers },
      },
      ctx.signal,
    );
    const next: GithubCursor = { v: 1 };

    const me = await http.get<GhUser>('/user', { etag: prev?.profileEtag });
    if (me.status === 200 && me.body) await ctx.emit({ upserts: [githubNormalize.profile(me.body)], deletes: [] });
    next.profileEtag = me.etag;

    next.repos = (
      await syncCollection(
        http,
        ctx,
        {
          firstPage: `/user/repos?per_page=${PER_PAGE}&sort=full_name&affiliation=owner,collaborator,organization_member`,
          type: 'code.repository',
          conditional: true,
          pageSize: PER_PAGE,
          items: asArray<GhRepo>,
          next: linkNext,
          nextInHeaders: true,
          normalize: githubNormalize.repository,
        },
        prev?.repos,
      )
    ).state;
    next.starred = (
      await syncCollection(
        http,
        ctx,
        {
          firstPage: `/user/starred?per_page=${PER_PAGE}`,
          type: 'code.star',
          conditional: true,
          pageSize: PER_PAGE,
          items: asArray<GhStar>,
          // Only this media type carries `starred_at`; the default one gives bare repositories.
          accept: 'application/vnd.github.star+json',
          next: linkNext,
          nextInHeaders: true,
          normalize: githubNormalize.star,
        },
        prev?.starred,
      )
    ).state;
    next.issues = (
      await syncCollection(
        http,
        ctx,
        {
          firstPage: `/issues?filter=assigned&state=all&per_page=${PER_PAGE}`,
          type: 'code.issue',
          conditional: true,
          pageSize: PER_PAGE,
          items: asArray<GhIssue>,
          next: linkNext,
          nextInHeaders: true,
          normalize: githubNormalize.issue,
        },
        prev?.issues,
      )
    ).state;
    return next;
  }
}

function isGithubCursor(value: unknown): value is GithubCursor {
  return typeof value === 'object' && value !== null && (value as { v?: unknown }).v === 1;
}
