import { z } from 'zod';

/**
 * The one source-agnostic schema of Personal Server records. A record type names what a
 * thing IS (a track, a playlist, a play), never where it came from: Spotify's, Netflix's
 * and ListenBrainz's "the user played this" are all one `media.play_event` with the same
 * fields, so an app written against it works for every source that produces it.
 *
 * Versioning: CATALOG_VERSION goes up when a type is added or gains an optional field
 * (backwards compatible). A type is never changed incompatibly under its name: it is
 * retired, and the records stored under it are moved by a migration of stored records
 * (RECORD_MIGRATIONS) that every Personal Server runs once.
 *
 * Rules every shape follows: ids are the source's ids as strings; times are ISO-8601 UTC
 * strings; `source` names the integration that produced the record; optional fields are
 * left out rather than null; bodies are objects (so `fields=` projects top-level keys).
 */
export const CATALOG_VERSION = 3;

const isoTime = z.iso.datetime({ offset: true });
const url = z.url();
const mediaKind = z.enum(['music', 'podcast', 'episode', 'film', 'video', 'other']);

/**
 * An International Standard Recording Code (ISO 3901), as sources print it: upper case, no
 * hyphens (`USUM71703861`). Connectors normalize what they receive and leave out what is not one.
 */
const isrc = z.string().regex(/^[A-Z]{2}[A-Z0-9]{3}\d{7}$/, 'an ISRC: CC-XXX-YY-NNNNN without hyphens');
/** The source's ids of `creators`, in the same order; left out unless every creator has one. */
const creatorIds = z.array(z.string().min(1));
/** The length of the thing itself (a track's, an episode's), never how long it was played. */
const itemDurationMs = z.number().int().nonnegative();

/** media.play_event v1 (catalog 1), kept as the shape media.watch_event had in common with it. */
const playEventV1Shape = {
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
  /** Catalog version from which nothing writes or grants the type (its records were migrated). */
  retired?: number;
}

function define(
  name: string,
  description: string,
  shape: z.ZodRawShape,
  since = 1,
  retired?: number,
): RecordTypeDefinition {
  // strict: an unknown field is a normalizer bug, and silently storing it would make two
  // sources' "same" records differ in shape.
  return {
    name,
    since,
    description,
    schema: z.strictObject({ source, ...shape }),
    ...(retired === undefined ? {} : { retired }),
  };
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
      durationMs: z.number().int().nonnegative().optional().describe('The length of the item itself.'),
      url: url.optional(),
      savedAt: isoTime.optional(),
      collectionId: z.string().min(1).optional().describe("The source's id of `collection` (an album id)."),
      creatorIds: creatorIds.optional().describe("The source's ids of `creators`, same order."),
      isrc: isrc.optional().describe('ISRC of the recording, where the source has it.'),
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
  define(
    'media.playlist_item',
    "One entry of a playlist, with a snapshot of what it points at (so an entry reads on its own, whether it is a track, a podcast episode or a file on the person's device). `trackId` is the source's id of the item (a media.track's id for a saved track); a local file has no id at the source, so its `trackId` is the source's URI of it.",
    {
      playlistId: z.string().min(1),
      trackId: z.string().min(1),
      position: z.number().int().nonnegative(),
      title: z.string().optional(),
      addedAt: isoTime.optional(),
      itemKind: z
        .enum(['track', 'episode', 'local'])
        .optional()
        .describe(
          "What the entry points at: a catalog track, a podcast episode, or a local file on the person's device.",
        ),
      creators: z.array(z.string()).optional().describe('Artists or show of the item.'),
      creatorIds: creatorIds.optional().describe("The source's ids of `creators`, same order."),
      collection: z.string().optional().describe('Album or show the item belongs to.'),
      collectionId: z.string().min(1).optional().describe("The source's id of `collection` (an album id)."),
      itemDurationMs: itemDurationMs.optional().describe('The length of the item.'),
      isrc: isrc.optional().describe('ISRC of the recording, where the source has it.'),
    },
  ),
  define(
    'media.play_event',
    'The user played something, audio or video (a Spotify recently played track, a Netflix viewing, a ListenBrainz listen): one entry per play. `kind` says what was played; `durationMs` is always how long it played and `itemDurationMs` the length of the thing played.',
    {
      ...playEventV1Shape,
      durationMs: z
        .number()
        .int()
        .nonnegative()
        .optional()
        .describe(
          'How long it played (time watched or listened), when the source tells; never the length of the item.',
        ),
      itemDurationMs: itemDurationMs.optional().describe('The length of what was played (the track, the episode).'),
      supplemental: z
        .boolean()
        .default(false)
        .describe(
          'A trailer, hook, recap or other extra around the content, not a play of the content itself. Absent on plays stored before catalog version 3: read absent as false.',
        ),
      collection: z.string().optional().describe('Album, season or series the item belongs to.'),
      collectionId: z.string().min(1).optional().describe("The source's id of `collection` (an album id)."),
      creatorIds: creatorIds.optional().describe("The source's ids of `creators`, same order."),
      isrc: isrc.optional().describe('ISRC of the recording, where the source has it.'),
      /** Who played it, where one account has several viewers (a Netflix profile's name). */
      profile: z.string().min(1).max(200).optional(),
      series: z.string().optional(),
      season: z.number().int().nonnegative().optional(),
      episode: z.number().int().nonnegative().optional(),
    },
  ),
  define(
    'media.watch_event',
    'Retired in catalog version 3: Netflix viewings are media.play_event records now (kind `episode` or `film`), and stored ones were migrated (see "Migrations of stored records"). No scope grants this type any more.',
    {
      ...playEventV1Shape,
      /** Who watched, where one account has several viewers (a Netflix profile's name). */
      profile: z.string().min(1).max(200).optional(),
      series: z.string().optional(),
      season: z.number().int().nonnegative().optional(),
      episode: z.number().int().nonnegative().optional(),
    },
    1,
    3,
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
