import { MAX_QUERY_LIMIT } from '@context-gateway/proto';
import { RECORD_TYPES } from '@context-gateway/record-catalog';
import { z } from 'zod';

import { id, queryInt } from '../http/input.js';

export const connectionParams = z.strictObject({ connectionId: id() });

/** Largest value of a Postgres bigint, the column a records cursor points into. */
const MAX_BIGINT = 2n ** 63n - 1n;

/**
 * A records cursor as the Personal Server issues it (personal-server/src/records/cursor.ts:
 * base64url of `v1:<version>`), checked here as well so that a forged one is the caller's
 * 422 at the edge: a version above the bigint range would otherwise reach the shard's query
 * and come back as a database error.
 */
function isRecordsCursor(cursor: string): boolean {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) return false;
  const match = /^v1:([0-9]{1,19})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  return match?.[1] !== undefined && BigInt(match[1]) <= MAX_BIGINT;
}

const typeNames = RECORD_TYPES.map((t) => t.name) as [string, ...string[]];

export const recordsQuery = z.strictObject({
  type: z
    .enum(typeNames)
    .optional()
    .describe('One record type (docs/record-types.md); omitted: every type your grant covers.'),
  since: z.iso
    .datetime({ offset: true })
    .optional()
    .describe('Only records changed after this time (includes tombstones: `deleted: true`).'),
  limit: queryInt(1, MAX_QUERY_LIMIT).default(100),
  cursor: z
    .string()
    .min(1)
    .max(200)
    .refine(isRecordsCursor, 'not a cursor this API returned')
    .optional()
    .describe('`nextCursor` of the previous page.'),
  fields: z
    .string()
    .max(1_000)
    .regex(/^[A-Za-z0-9_]+(,[A-Za-z0-9_]+)*$/, 'comma-separated field names')
    .optional()
    .describe('Comma-separated top-level fields of `data` to return (e.g. `name,url`).'),
});

const recordSchema = z.object({
  id: z.uuid(),
  type: z.string(),
  externalId: z.string().describe("The item's id at the source."),
  updatedAt: z.iso.datetime().describe('When this record last changed here.'),
  sourceUpdatedAt: z.iso.datetime(),
  deleted: z.boolean().describe('A tombstone: the item was deleted at the source; `data` is null.'),
  data: z.record(z.string(), z.unknown()).nullable().describe('The body, in the shape of its record type.'),
});

export const recordsPageSchema = z.object({
  records: z.array(recordSchema),
  nextCursor: z.string().nullable().describe('Pass as `cursor` for the next page; null: this was the last page.'),
  syncedAt: z.iso
    .datetime()
    .nullable()
    .describe('When the source was last read for this connection (freshness); null before the first sync.'),
});

export const revokedSchema = z.object({ grantId: z.string() });

export const userGrantParams = z.strictObject({ connectionId: id(), applicationId: id() });
