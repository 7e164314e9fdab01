import type { KeyObject } from 'node:crypto';

import {
  hashesEqual,
  type LogProblem,
  type StoredEntry,
  type VerifiedCheckpoint,
  verifyCheckpoint,
  verifyLog,
} from '@context-gateway/merkle-log';
import type pg from 'pg';

import { eventFromEntry, searchColumns } from './audit-event-codec.js';
import { type EntryRow, LogRepository } from './log.repository.js';

export type StoredLogVerification =
  { ok: true; treeSize: number; rootHash: string; checkpointsMatched: number } | ({ ok: false } & LogProblem);

const SEARCH_FIELDS = ['orgId', 'applicationId', 'userId', 'integration', 'capability', 'action', 'outcome'] as const;

/** Whether the searchable copy of the event still says what the hashed entry says. */
function columnsMatch(row: EntryRow): boolean {
  const event = eventFromEntry(row.entry);
  if (!event) return true; // an undecodable entry is verifyLog's finding ('edited')
  const expected = searchColumns(event);
  return (
    SEARCH_FIELDS.every((f) => expected[f] === row[f]) && expected.occurredAt.getTime() === row.occurredAt.getTime()
  );
}

/**
 * Recomputes the whole log from Postgres — every leaf hash, the hash chain, the tree — and
 * checks it against every signed checkpoint (signatures checked with `publicKey`, the key
 * the auditor pinned: a checkpoint re-signed by any other key is `checkpoint_mismatch`). Names
 * the first entry that was edited, deleted, inserted or reordered (libs/merkle-log
 * verifyLog), or whose search columns were changed to hide it from auditors. `witnessed`
 * are checkpoints held outside the database (a witness's, checked by the caller): the stored
 * log must reach and match them too, so a tail cut off with its checkpoints is `deleted`.
 */
export async function verifyStoredLog(
  pool: pg.Pool,
  publicKey: KeyObject,
  origin: string,
  keyName = origin,
  witnessed: readonly VerifiedCheckpoint[] = [],
): Promise<StoredLogVerification> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const checkpoints: VerifiedCheckpoint[] = [...witnessed];
    for (const stored of await LogRepository.allCheckpoints(client)) {
      const verified = verifyCheckpoint(stored.note, publicKey, { origin, keyName });
      if (!verified.ok)
        return {
          ok: false,
          kind: 'checkpoint_mismatch',
          index: stored.treeSize,
          detail: `checkpoint ${stored.treeSize}: ${verified.reason}`,
        };
      if (
        verified.checkpoint.treeSize !== stored.treeSize ||
        !hashesEqual(verified.checkpoint.rootHash, stored.rootHash)
      ) {
        return {
          ok: false,
          kind: 'checkpoint_mismatch',
          index: stored.treeSize,
          detail: `checkpoint ${stored.treeSize}: its columns differ from its signed note`,
        };
      }
      checkpoints.push(verified.checkpoint);
    }
    let columnProblem: LogProblem | undefined;
    async function* rows(): AsyncGenerator<StoredEntry> {
      for await (const row of LogRepository.allEntries(client)) {
        if (!columnProblem && !columnsMatch(row)) {
          columnProblem = {
            kind: 'edited',
            index: row.seq,
            eventId: row.eventId,
            detail: `entry ${row.seq}: its search columns no longer match the hashed event`,
          };
        }
        yield { index: row.seq, eventId: row.eventId, canonicalBytes: row.entry, storedLeafHash: row.leafHash };
      }
    }
    const result = await verifyLog(rows(), checkpoints);
    if (!result.ok) {
      const { ok: _ok, ...problem } = result;
      // Report whichever problem comes first in the log.
      return columnProblem && columnProblem.index < problem.index
        ? { ok: false, ...columnProblem }
        : { ok: false, ...problem };
    }
    if (columnProblem) return { ok: false, ...columnProblem };
    return {
      ok: true,
      treeSize: result.treeSize,
      rootHash: result.rootHash.toString('hex'),
      checkpointsMatched: result.checkpointsMatched - witnessed.length,
    };
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
}
