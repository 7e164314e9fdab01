import { z } from 'zod';

/**
 * The pages of GitHub's REST API that the GitHub connector reads, as GitHub's OpenAPI
 * description has them (github/rest-api-description, `api.github.com` for API version
 * 2022-11-28, as published in @octokit/openapi 23; each schema names its
 * `components/schemas` entry and each page its operationId). Written in the project's own
 * words so tests need no copy of the description: the simulator's answers must parse under
 * them (provider-shapes.int-spec.ts) and the connectors' property tests generate pages from
 * them. Objects are loose (unknown fields allowed, as in the description); a field is
 * required exactly where the description's `required` lists it and nullable where it says
 * `nullable: true`.
 */

/** `format: uri`. GitHub's URL templates (`…{/number}`) are plain strings, not URIs. */
const uri = z.url();
/** `format: date-time`. */
const dateTime = z.iso.datetime({ offset: true });
const int = z.number().int();

const strings = <K extends string>(keys: readonly K[], schema: z.ZodType) =>
  Object.fromEntries(keys.map((k) => [k, schema])) as Record<K, typeof schema>;

/** simple-user (and nullable-simple-user, the same object or null). */
export const githubSimpleUser = z.looseObject({
  name: z.string().nullable().optional(),
  email: z.string().nullable().optional(),
  login: z.string(),
  id: int,
  node_id: z.string(),
  gravatar_id: z.string().nullable(),
  ...strings(
    [
      'avatar_url',
      'url',
      'html_url',
      'followers_url',
      'subscriptions_url',
      'organizations_url',
      'repos_url',
      'received_events_url',
    ] as const,
    uri,
  ),
  ...strings(['following_url', 'gists_url', 'starred_url', 'events_url', 'type'] as const, z.string()),
  site_admin: z.boolean(),
  starred_at: z.string().optional(),
  user_view_type: z.string().optional(),
});

/** nullable-license-simple. */
const license = z
  .looseObject({
    key: z.string(),
    name: z.string(),
    url: uri.nullable(),
    spdx_id: z.string().nullable(),
    node_id: z.string(),
    html_url: uri.optional(),
  })
  .nullable();

/** A repository's API links (`format: uri` in the description). */
export const REPOSITORY_API_URL_FIELDS = [
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
] as const;

/** A repository's URL templates (`{/sha}`) and git/ssh/clone URLs: plain strings in the description. */
export const REPOSITORY_TEMPLATE_URL_FIELDS = [
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
] as const;

/** repository: the object of `/user/repos`, of `/user/starred` and of an issue's `repository`. */
export const githubRepository = z.looseObject({
  id: int,
  node_id: z.string(),
  name: z.string(),
  full_name: z.string(),
  license,
  forks: int,
  permissions: z
    .looseObject({
      admin: z.boolean(),
      pull: z.boolean(),
      triage: z.boolean().optional(),
      push: z.boolean(),
      maintain: z.boolean().optional(),
    })
    .optional(),
  owner: githubSimpleUser,
  private: z.boolean(),
  html_url: uri,
  description: z.string().nullable(),
  fork: z.boolean(),
  url: uri,
  ...strings(REPOSITORY_API_URL_FIELDS, uri),
  ...strings(REPOSITORY_TEMPLATE_URL_FIELDS, z.string()),
  mirror_url: uri.nullable(),
  homepage: uri.nullable(),
  language: z.string().nullable(),
  forks_count: int,
  stargazers_count: int,
  watchers_count: int,
  size: int,
  default_branch: z.string(),
  open_issues_count: int,
  is_template: z.boolean().optional(),
  topics: z.array(z.string()).optional(),
  has_issues: z.boolean(),
  has_projects: z.boolean(),
  has_wiki: z.boolean(),
  has_pages: z.boolean(),
  /** Deprecated. */
  has_downloads: z.boolean(),
  has_discussions: z.boolean().optional(),
  archived: z.boolean(),
  disabled: z.boolean(),
  visibility: z.string().optional(),
  pushed_at: dateTime.nullable(),
  created_at: dateTime.nullable(),
  updated_at: dateTime.nullable(),
  allow_forking: z.boolean().optional(),
  web_commit_signoff_required: z.boolean().optional(),
  open_issues: int,
  watchers: int,
});

/** starred-repository: what `/user/starred` lists under `application/vnd.github.star+json`. */
export const githubStarredRepository = z.looseObject({ starred_at: dateTime, repo: githubRepository });

/** An issue's label: a name, or a label object (every field optional, `color` nullable). */
const issueLabel = z.union([
  z.string(),
  z.looseObject({
    id: int.optional(),
    node_id: z.string().optional(),
    url: uri.optional(),
    name: z.string().optional(),
    description: z.string().nullable().optional(),
    color: z.string().nullable().optional(),
    default: z.boolean().optional(),
  }),
]);

/** issue: what `/issues` lists (issues and pull requests, with their repository). */
export const githubIssue = z.looseObject({
  id: int,
  node_id: z.string(),
  url: uri,
  repository_url: uri,
  labels_url: z.string(),
  comments_url: uri,
  events_url: uri,
  html_url: uri,
  number: int,
  /** "State of the issue; either 'open' or 'closed'" — typed as a plain string. */
  state: z.string(),
  state_reason: z.enum(['completed', 'reopened', 'not_planned', 'duplicate']).nullable().optional(),
  title: z.string(),
  body: z.string().nullable().optional(),
  user: githubSimpleUser.nullable(),
  labels: z.array(issueLabel),
  assignee: githubSimpleUser.nullable(),
  assignees: z.array(githubSimpleUser).nullable().optional(),
  /** nullable-milestone (only what identifies one: the rest is not read). */
  milestone: z.looseObject({ id: int, number: int, title: z.string(), state: z.enum(['open', 'closed']) }).nullable(),
  locked: z.boolean(),
  active_lock_reason: z.string().nullable().optional(),
  comments: int,
  pull_request: z
    .looseObject({
      merged_at: dateTime.nullable().optional(),
      diff_url: uri.nullable(),
      html_url: uri.nullable(),
      patch_url: uri.nullable(),
      url: uri.nullable(),
    })
    .optional(),
  closed_at: dateTime.nullable(),
  created_at: dateTime,
  updated_at: dateTime,
  draft: z.boolean().optional(),
  repository: githubRepository.optional(),
  author_association: z
    .enum([
      'COLLABORATOR',
      'CONTRIBUTOR',
      'FIRST_TIMER',
      'FIRST_TIME_CONTRIBUTOR',
      'MANNEQUIN',
      'MEMBER',
      'NONE',
      'OWNER',
    ])
    .optional(),
});

/** The fields private-user and public-user share, all required. */
const userBase = githubSimpleUser.extend({
  name: z.string().nullable(),
  company: z.string().nullable(),
  blog: z.string().nullable(),
  location: z.string().nullable(),
  email: z.string().nullable(),
  notification_email: z.string().nullable().optional(),
  hireable: z.boolean().nullable(),
  bio: z.string().nullable(),
  twitter_username: z.string().nullable().optional(),
  public_repos: int,
  public_gists: int,
  followers: int,
  following: int,
  created_at: dateTime,
  updated_at: dateTime,
});

/**
 * `GET /user` (users/get-authenticated): private-user or public-user, told apart by
 * `user_view_type`; the private one adds the account's own counts as required fields.
 */
export const githubAuthenticatedUser = z.union([
  userBase.extend({
    private_gists: int,
    total_private_repos: int,
    owned_private_repos: int,
    disk_usage: int,
    collaborators: int,
    two_factor_authentication: z.boolean(),
  }),
  userBase,
]);

/** `GET /user/repos` (repos/list-for-authenticated-user): repository[]. */
export const githubReposPage = z.array(githubRepository);

/** `GET /user/starred` (activity/list-repos-starred-by-authenticated-user), default media type: repository[]. */
export const githubStarredPage = z.array(githubRepository);

/** The same under `application/vnd.github.star+json`: starred-repository[]. */
export const githubStarredWithDatesPage = z.array(githubStarredRepository);

/** `GET /issues` (issues/list): issue[]. */
export const githubIssuesPage = z.array(githubIssue);
