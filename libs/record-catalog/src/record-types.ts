import { z } from 'zod';

/**
 * The one source-agnostic schema of Personal Server records. A record type names what a
 * thing IS (a track, a playlist, a play), never where it came from: Spotify's and
 * Netflix's "the user played this" are both a play/watch event with the same fields, so an
 * app written against `media.play_event` works for every source that produces it.
 *
 * Versioning: CATALOG_VERSION goes up when a type is added or gains an optional field
 * (backwards compatible); a breaking change is a new type name (`media.track.v2`), so
 * stored records and running apps never see a shape change under them.
 *
 * Rules every shape follows: ids are the source's ids as strings; times are ISO-8601 UTC
 * strings; `source` names the integration that produced the record; optional fields are
 * left out rather than null; bodies are objects (so `fields=` projects top-level keys).
 */
export const CATALOG_VERSION = 2;

const isoTime = z.iso.datetime({ offset: true });
const url = z.url();
const mediaKind = z.enum(['music', 'podcast', 'episode', 'film', 'video', 'other']);

/** media.play_event, and the part of media.watch_event that means the same. */
const playEventShape = {
  trackId: z.string().min(1),
  title: z.string(),
  creators: z.array(z.string()).default([]),
  kind: mediaKind,
  playedAt: isoTime,
  /** How long it played, when the source tells. */
  durationMs: z.number().int().nonnegative().optional(),
  device: z.string().optional(),
};
/** Which integration produced the record; lets an app show "from Spotify" without another lookup. */
const source = z.string().min(1).max(64);

/** A person or account someone follows / is followed by, or the user themselves. */
const person = z.strictObject({
  id: z.string().min(1),
  name: z.string().optional(),
  handle: z.string().optional(),
  url: url.optional(),
});

export interface RecordTypeDefinition {
  /** Dotted name, `<domain>.<thing>`. */
  name: string;
  /** Catalog version in which the type appeared. */
  since: number;
  description: string;
  schema: z.ZodObject;
}

function define(name: string, description: string, shape: z.ZodRawShape, since = 1): RecordTypeDefinition {
  // strict: an unknown field is a normalizer bug, and silently storing it would make two
  // sources' "same" records differ in shape.
  return { name, since, description, schema: z.strictObject({ source, ...shape }) };
}

export const RECORD_TYPES = [
  define('profile', "The user's account at the source: who they are there.", {
    id: z.string().min(1),
    displayName: z.string().optional(),
    handle: z.string().optional(),
    email: z.string().optional(),
    url: url.optional(),
    imageUrl: url.optional(),
    country: z.string().optional(),
  }),
  define(
    'media.track',
    'A piece of audio or video content (a song, an episode, a film) the user has saved or that appears in their library.',
    {
      id: z.string().min(1),
      title: z.string(),
      /** Artists, authors or studio; empty for sources that do not say. */
      creators: z.array(z.string()).default([]),
      collection: z.string().optional().describe('Album, season or series the item belongs to.'),
      kind: mediaKind,
      durationMs: z.number().int().nonnegative().optional(),
      url: url.optional(),
      savedAt: isoTime.optional(),
    },
  ),
  define('media.playlist', 'A named, ordered list the user owns or follows.', {
    id: z.string().min(1),
    name: z.string(),
    description: z.string().optional(),
    ownerId: z.string().optional(),
    public: z.boolean().optional(),
    itemCount: z.number().int().nonnegative().optional(),
    url: url.optional(),
  }),
  define('media.playlist_item', "One entry of a playlist; `trackId` refers to a media.track's id.", {
    playlistId: z.string().min(1),
    trackId: z.string().min(1),
    position: z.number().int().nonnegative(),
    title: z.string().optional(),
    addedAt: isoTime.optional(),
  }),
  define(
    'media.play_event',
    'The user played something (Spotify recently played, Netflix viewing activity): one entry per play.',
    playEventShape,
  ),
  define(
    'media.watch_event',
    'The user watched video (a title, an episode); same shape as media.play_event plus what was watched in a series.',
    {
      ...playEventShape,
      /** Who watched, where one account has several viewers (a Netflix profile's name). */
      profile: z.string().min(1).max(200).optional(),
      series: z.string().optional(),
      season: z.number().int().nonnegative().optional(),
      episode: z.number().int().nonnegative().optional(),
    },
  ),
  define('code.repository', 'A code repository the user owns or belongs to.', {
    id: z.string().min(1),
    fullName: z.string(),
    description: z.string().optional(),
    private: z.boolean(),
    defaultBranch: z.string().optional(),
    language: z.string().optional(),
    url: url.optional(),
    pushedAt: isoTime.optional(),
  }),
  define('code.issue', 'An issue or pull request the user created, is assigned to, or that is in their repositories.', {
    id: z.string().min(1),
    repository: z.string(),
    number: z.number().int().nonnegative(),
    title: z.string(),
    state: z.enum(['open', 'closed']),
    pullRequest: z.boolean().default(false),
    author: z.string().optional(),
    labels: z.array(z.string()).default([]),
    url: url.optional(),
    createdAt: isoTime.optional(),
    closedAt: isoTime.optional(),
  }),
  define('code.star', 'The user starred (bookmarked) a repository.', {
    repository: z.string().min(1),
    url: url.optional(),
    starredAt: isoTime.optional(),
  }),
  define('social.follow', 'A follow relation: the user follows `subject`, or `subject` follows the user.', {
    direction: z.enum(['following', 'follower']),
    subject: person,
    since: isoTime.optional(),
  }),
  define(
    'document.note',
    'A note, memo or document the user wrote at the source: its title, text and tags.',
    {
      id: z.string().min(1),
      title: z.string(),
      body: z.string().optional(),
      tags: z.array(z.string()).default([]),
      url: url.optional(),
      createdAt: isoTime.optional(),
      updatedAt: isoTime.optional(),
    },
    2,
  ),
] as const satisfies readonly RecordTypeDefinition[];

export type RecordTypeName = (typeof RECORD_TYPES)[number]['name'];

const BY_NAME: ReadonlyMap<string, RecordTypeDefinition> = new Map(RECORD_TYPES.map((t) => [t.name, t]));

export function recordType(name: string): RecordTypeDefinition | undefined {
  return BY_NAME.get(name);
}

export function isRecordType(name: string): name is RecordTypeName {
  return BY_NAME.has(name);
}
