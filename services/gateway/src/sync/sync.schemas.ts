import { z } from 'zod';

import { connectionParams } from '../records/records.schemas.js';

/** The connection whose sync is asked about (the same parameter as the records routes). */
export const syncParams = connectionParams;

export const syncStateSchema = z.object({
  state: z
    .enum(['idle', 'queued', 'running', 'failed', 'needs_reauth'])
    .describe(
      '`queued`: a job is waiting (or retrying); `failed`: the last job ran out of retries (the schedule keeps trying); `needs_reauth`: the user must connect again.',
    ),
  lastSuccessAt: z.iso.datetime().nullable().describe('When the last sync (or import) finished.'),
  lastError: z.string().nullable().describe('The last failure: an error code and a safe message.'),
  recordsSynced: z.number().int().describe('Records written (changes and deletions) by every sync and import so far.'),
  nextRunAt: z.iso
    .datetime()
    .nullable()
    .describe('When the schedule runs it next (webhooks and `POST .../sync` come on top).'),
  lastRunSkipped: z
    .array(
      z.object({
        kind: z
          .string()
          .describe(
            '`forbidden`: the source refused this one resource (e.g. a followed playlist); `malformed`: an entry that could not be read (e.g. a `null` in a list); `invalid_record`: the record catalog refused it.',
          ),
        resource: z.string().describe("What was left out, in the source's terms or as `type/externalId`."),
        reason: z.string(),
      }),
    )
    .describe(
      'What the last successful run left out and why (the first 100). The run succeeded: everything else was stored. Empty when nothing was skipped.',
    ),
  lastRunSkippedTotal: z.number().int().describe('How many items the last successful run skipped in all.'),
});

export const syncRequestedSchema = z.object({
  jobId: z.uuid(),
  state: z.literal('queued'),
});

const importResultSchema = z.object({
  imported: z
    .number()
    .int()
    .describe('Rows read without a problem (each a record; rows already imported before count, but change nothing).'),
  written: z.number().int().describe('Records that were new or changed.'),
  unchanged: z.number().int().describe('Records identical to what was already stored (e.g. a re-upload).'),
  rejected: z
    .array(z.object({ line: z.number().int(), message: z.string() }))
    .describe('Rows skipped, with the line number in the file and why.'),
  rejectedTotal: z.number().int().describe('All rejected rows (`rejected` lists at most the first 100).'),
});

export const webhookAcceptedSchema = z.object({
  jobsQueued: z.number().int().describe('Connections a sync was queued for.'),
});

/** The upload routes' answer (the applications' and the person's own in the portal). */
export const importSuccess = {
  status: 200,
  schema: importResultSchema,
  description: 'What was imported and which rows were rejected.',
};

/** What an upload can be refused with, whoever sends it. */
export const IMPORT_ERRORS = [
  'unauthenticated',
  'connection_not_found',
  'validation_failed',
  'payload_too_large',
  'unsupported_media_type',
] as const;
