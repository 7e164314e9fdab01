import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { AppError } from '@context-gateway/errors';
import { fetchConsistencyProof, fetchInclusionProof, parseCheckpoint } from '@context-gateway/merkle-log';
import {
  AuditEntrySchema,
  CheckpointSchema,
  type GetCheckpointRequest,
  type GetConsistencyProofRequest,
  type GetEntryRequest,
  type SearchEntriesRequest,
} from '@context-gateway/proto';
import { PG_POOL } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type pg from 'pg';

import { actionName, eventFromEntry, outcomeName } from './audit-event-codec.js';
import { type EntryRow, LogRepository, type Queryable, type StoredCheckpoint } from './log.repository.js';
import { SigningKeyHolder } from './signing-key.holder.js';

const DEFAULT_LIMIT = 100;

function encodeCursor(row: EntryRow): string {
  return Buffer.from(JSON.stringify({ t: row.occurredAt.getTime(), s: row.seq })).toString('base64url');
}

function decodeCursor(cursor: string): { occurredAt: Date; seq: number } {
  try {
    const { t, s } = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { t: unknown; s: unknown };
    if (Number.isSafeInteger(t) && Number.isSafeInteger(s))
      return { occurredAt: new Date(t as number), seq: s as number };
  } catch {
    // falls through to the error below
  }
  throw new AppError('validation_failed', 'cursor is not one this API returned', [
    { path: 'cursor', message: 'invalid cursor' },
  ]);
}

function entryMessage(row: EntryRow): MessageInitShape<typeof AuditEntrySchema> {
  const event = eventFromEntry(row.entry);
  return {
    index: BigInt(row.seq),
    event,
    leafHash: row.leafHash,
    canonicalEntry: row.entry,
    recordedAt: timestampFromDate(row.recordedAt),
  };
}

function checkpointMessage(stored: StoredCheckpoint): MessageInitShape<typeof CheckpointSchema> {
  const body = parseCheckpoint(stored.note.slice(0, stored.note.indexOf('\n\n') + 1));
  return create(CheckpointSchema, {
    treeSize: BigInt(stored.treeSize),
    rootHash: stored.rootHash,
    timestamp: timestampFromDate(body.timestamp),
    signedNote: stored.note,
    origin: body.origin,
  });
}

/**
 * The checkpoint as served: its signed note with every witness cosignature stored for it
 * appended (C2SP tlog-cosignature lines), so a proof against it can be checked offline
 * against the witness's key too. Verifiers that do not know a witness skip its line.
 */
async function cosigned(db: Queryable, stored: StoredCheckpoint): Promise<StoredCheckpoint> {
  const lines = await LogRepository.cosignatureLines(db, stored.treeSize);
  return lines.length === 0 ? stored : { ...stored, note: stored.note + lines.join('') };
}

/** Reads for the auditor API: search, one entry with its inclusion proof, checkpoints, consistency. */
@Injectable()
export class LogQueryService {
  constructor(
    @Inject(PG_POOL) private readonly pool: pg.Pool,
    private readonly signingKey: SigningKeyHolder,
  ) {}

  async search(req: SearchEntriesRequest) {
    const limit = req.limit === 0 ? DEFAULT_LIMIT : req.limit;
    const rows = await LogRepository.asWriterRole(this.pool, (db) =>
      LogRepository.search(db, {
        orgId: req.orgId || undefined,
        from: req.from ? timestampDate(req.from) : undefined,
        to: req.to ? timestampDate(req.to) : undefined,
        applicationId: req.applicationId || undefined,
        userId: req.userId || undefined,
        integration: req.integration || undefined,
        capability: req.capability || undefined,
        outcome: req.outcome ? outcomeName(req.outcome) : undefined,
        action: req.action ? actionName(req.action) : undefined,
        before: req.cursor ? decodeCursor(req.cursor) : undefined,
        // One extra row says whether there is a next page without a second query.
        limit: limit + 1,
      }),
    );
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    // Search results leave out the canonical bytes (GET one entry has them, with its proof).
    return {
      entries: page.map((row) => ({ ...entryMessage(row), canonicalEntry: new Uint8Array() })),
      nextCursor: rows.length > limit && last ? encodeCursor(last) : '',
    };
  }

  async getEntry(req: GetEntryRequest) {
    return LogRepository.asWriterRole(this.pool, async (db) => {
      // Scoped in the query itself: another org's (or person's) entry is simply not found.
      const scope = req.orgId ? { orgId: req.orgId } : { userId: req.userId };
      const row = await LogRepository.entryByEventId(db, scope, req.eventId);
      if (!row) throw new AppError('not_found', 'No such audit entry');
      const checkpoint = await LogRepository.latestCheckpoint(db);
      if (!checkpoint || checkpoint.treeSize <= row.seq) return { entry: entryMessage(row), inclusionProof: [] };
      const proof = await fetchInclusionProof(row.seq, checkpoint.treeSize, LogRepository.hashReader(db));
      return {
        entry: entryMessage(row),
        checkpoint: checkpointMessage(await cosigned(db, checkpoint)),
        inclusionProof: proof,
      };
    });
  }

  async getCheckpoint(req: GetCheckpointRequest) {
    const size = storableSize(req.treeSize);
    const stored = await LogRepository.asWriterRole(this.pool, async (db) => {
      const found =
        req.treeSize === 0n
          ? await LogRepository.latestCheckpoint(db)
          : size === undefined
            ? undefined
            : await LogRepository.checkpointOfSize(db, size);
      return found && cosigned(db, found);
    });
    if (!stored) throw new AppError('not_found', 'No such checkpoint');
    const key = await this.signingKey.get();
    // An Ed25519 JWK always has `x` (the raw public key); signing-key.ts refuses any other key type.
    const { x } = key.signer.publicKey.export({ format: 'jwk' });
    if (x === undefined) throw new AppError('internal', 'The checkpoint signing key has no public key bytes');
    const raw = Buffer.from(x, 'base64url');
    return { checkpoint: checkpointMessage(stored), publicKey: raw, keyName: key.keyName };
  }

  async getConsistencyProof(req: GetConsistencyProofRequest) {
    const oldSize = storableSize(req.oldSize);
    const newSize = storableSize(req.newSize);
    if (oldSize === undefined || newSize === undefined)
      throw new AppError('not_found', 'Both sizes must be signed checkpoints');
    return LogRepository.asWriterRole(this.pool, async (db) => {
      const [older, newer] = await Promise.all([
        LogRepository.checkpointOfSize(db, oldSize),
        LogRepository.checkpointOfSize(db, newSize),
      ]);
      if (!older || !newer) throw new AppError('not_found', 'Both sizes must be signed checkpoints');
      const proof = await fetchConsistencyProof(older.treeSize, newer.treeSize, LogRepository.hashReader(db));
      return {
        oldCheckpoint: checkpointMessage(await cosigned(db, older)),
        newCheckpoint: checkpointMessage(await cosigned(db, newer)),
        proof,
      };
    });
  }
}

/**
 * A requested tree size as the log stores it, or undefined when no checkpoint can have it:
 * the wire's uint64 reaches 2^64 - 1, past Postgres's bigint and exact JS numbers, and was
 * an `internal` error (a query out of range) before the fuzzer sent one (docs/fuzzing.md).
 */
function storableSize(size: bigint): number | undefined {
  return size <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(size) : undefined;
}
