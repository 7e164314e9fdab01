import { randomUUID } from 'node:crypto';

import { type Timestamp, timestampDate } from '@bufbuild/protobuf/wkt';
import { Clock } from '@context-gateway/clock';
import type { DataKey } from '@context-gateway/crypto';
import { AppError } from '@context-gateway/errors';
import type { QueryRecordsRequest, WriteRecordsRequest } from '@context-gateway/proto';
import { CATALOG_VERSION, recordType, typesForIntegration, validateRecord } from '@context-gateway/record-catalog';
import { LOGGER } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import { ConnectionsRepository } from '../connections/connections.repository.js';
import { ConnectionsService } from '../connections/connections.service.js';
import { DirectoryService } from '../directory/directory.service.js';
import { grantSealMatches } from '../grants/grant-seal.js';
import { RecordKeys } from '../keys/record-keys.service.js';
import { RecordMigrationsService } from '../record-migrations/record-migrations.service.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { rethrowLockConflict } from './lock-conflict.js';
import { type Room, writeParts } from './page-bytes.js';
import { QUERY_REPLY_ROOM } from './query-reply.js';
import { recordAad, recordAadEncoder, recordAadScratch, recordDigestContextEncoder } from './record-aad.js';
import {
  recordKey,
  RecordsRepository,
  type RecordWrite,
  type StoredForWrite,
  type StoredRecord,
} from './records.repository.js';

export interface QueryPage {
  recordsJson: Buffer;
  nextCursor: string;
  syncedAt: Date | null;
}

export interface WriteCounts {
  written: number;
  unchanged: number;
  tombstoned: number;
}

const EMPTY = Buffer.alloc(0);

function toDate(ts: Timestamp | undefined): Date | undefined {
  return ts ? timestampDate(ts) : undefined;
}

/** One record of a write, validated. */
interface BatchItem {
  type: string;
  externalId: string;
  plaintext: Buffer | undefined;
  sourceUpdatedAt: Date;
  /** The source said when (a deletion inferred from a listing that no longer shows the item does not). */
  sourceTimed: boolean;
  /** The body's keyed digest, once the connection's key is open; null for a deletion. */
  digest: Buffer | null;
}

/** Writing records (sync) and reading pages of them (apps, through the gateway). */
@Injectable()
export class RecordsService {
  constructor(
    private readonly repository: RecordsRepository,
    private readonly connections: ConnectionsService,
    private readonly connectionsRepository: ConnectionsRepository,
    private readonly directory: DirectoryService,
    private readonly keys: RecordKeys,
    private readonly migrations: RecordMigrationsService,
    private readonly clock: Clock,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /**
   * Idempotent upsert of a sync batch. Each body is validated against the catalog before
   * anything is written (one bad record fails the batch: a normalizer bug must be loud).
   * Under the connection's row lock: unchanged records keep their version (so re-running
   * a sync does not make apps re-read everything), older-than-stored ones are ignored
   * (an out-of-order batch cannot roll a record back), tombstones drop the body. A write
   * that loses a lock conflict (a migration running) fails as `service_unavailable`, retried.
   */
  async write(request: WriteRecordsRequest): Promise<WriteCounts> {
    const allowed = typesForIntegration(request.integration);
    const batch = new Map<string, BatchItem>();
    const now = this.clock.date();
    request.records.forEach((record, index) => {
      if (!allowed.has(record.type)) {
        throw new AppError('invalid_record', `${request.integration} does not produce record type "${record.type}"`, [
          { path: `records[${index}].type`, message: 'not a type of this integration' },
        ]);
      }
      let plaintext: Buffer | undefined;
      if (!record.deleted) {
        let body: unknown;
        try {
          // A view of the request's bytes, not a copy of them.
          body = JSON.parse(
            Buffer.from(record.dataJson.buffer, record.dataJson.byteOffset, record.dataJson.byteLength).toString(
              'utf8',
            ),
          );
        } catch {
          throw new AppError('invalid_record', 'The record body is not JSON', [
            { path: `records[${index}].dataJson`, message: 'not JSON' },
          ]);
        }
        plaintext = Buffer.from(JSON.stringify(validateRecord(record.type, body)));
      }
      // The same item twice in one batch: the last one wins, as it would across batches.
      batch.set(recordKey(record), {
        type: record.type,
        externalId: record.externalId,
        plaintext,
        sourceUpdatedAt: toDate(record.sourceUpdatedAt) ?? now,
        sourceTimed: record.sourceUpdatedAt !== undefined,
        digest: null,
      });
    });

    // Before the row lock: digests and the encryption of every body as a new record, which
    // need only the connection's key and owner (fixed for the row's life). Writes of one
    // connection commit one at a time under its row lock; done here, a write's crypto (most
    // of its CPU) runs while an earlier write of the same connection holds the lock, on this
    // shard or another. A first write (no row yet) does it under the lock instead.
    //
    // Items the connection has stored already (a re-sync) are not sealed as new records: an
    // AES-GCM encryption each, and their ciphertexts in the INSERT, for rows it would skip.
    // Under the lock they are compared with what is stored, and only a changed one is
    // encrypted, under its stored id. No lookup while an initial sync's batches come, nor for
    // a handful of records (RecordsRepository.storedKeys).
    const committed = await this.connectionsRepository.findCommitted(request.connectionId);
    const early =
      committed && committed.userId === request.userId && committed.integration === request.integration
        ? await this.sealFresh(
            committed,
            batch,
            await this.repository.storedKeys(
              committed.id,
              [...batch.values()].filter((item) => item.plaintext !== undefined),
            ),
          )
        : undefined;

    return this.connections
      .transaction(async (tx) => {
        const connection = await this.connections.ensure(
          tx,
          { connectionId: request.connectionId, userId: request.userId, integration: request.integration },
          true,
        );
        // The row could have been shredded and made again in between (another key): seal again.
        const sealed =
          early && early.dataKeyId === connection.dataKeyId && early.personalServerId === connection.personalServerId
            ? early
            : await this.sealFresh(connection, batch);
        const { key, fresh } = sealed;
        const counts: WriteCounts = { written: 0, unchanged: 0, tombstoned: 0 };
        const aad = recordAadEncoder(connection.personalServerId, connection.id);
        const encrypt = (id: string, type: string, plaintext: Buffer) => key.encrypt(plaintext, aad(id, type));
        // Versions are handed out in order under the row lock; one that ends up unused (a
        // record found unchanged below) leaves a gap, which cursors do not mind.
        let version = connection.lastVersion;
        let lastWritten = connection.lastVersion;

        // 1. Records this connection has never stored go in with one INSERT … ON CONFLICT DO
        //    NOTHING (or a COPY): the unique index tells new from known under the lock, with no
        //    lookup in it (an initial sync is all new, and its cost no longer grows with the
        //    rows already written). Items found stored before the lock are not among them; one
        //    stored since is skipped by the conflict check, the unique index's whatever the
        //    planner thinks, and sealed again below under its stored id.
        for (const write of fresh) write.version = version += 1n;
        const inserted = await this.repository.insertNew(
          tx,
          connection.personalServerId,
          connection.id,
          fresh,
          sealed.stored > 0,
        );
        counts.written += inserted.size;
        for (const write of fresh)
          if (inserted.has(recordKey(write)) && write.version > lastWritten) lastWritten = write.version;

        // 2. The rest are stored already, or are deletions: each is compared with what is stored.
        const known = [...batch].filter(([id]) => !inserted.has(id)).map(([, item]) => item);
        const stored =
          known.length === 0
            ? new Map<string, StoredForWrite>()
            : new Map((await this.repository.findForWrite(tx, connection.id, known)).map((r) => [recordKey(r), r]));
        const writes: RecordWrite[] = [];
        for (const item of known) {
          const previous = stored.get(recordKey(item));
          if (previous && previous.sourceUpdatedAt > item.sourceUpdatedAt) {
            counts.unchanged += 1;
            continue;
          }
          if (item.plaintext === undefined) {
            if (previous?.deletedAt) {
              counts.unchanged += 1;
              continue;
            }
          } else if (
            previous &&
            !previous.deletedAt &&
            this.sameBody(key, connection.personalServerId, connection.id, previous, item.plaintext, item.digest)
          ) {
            counts.unchanged += 1;
            continue;
          }
          const recordId = previous?.id ?? randomUUID();
          version += 1n;
          lastWritten = version;
          writes.push({
            id: recordId,
            type: item.type,
            externalId: item.externalId,
            ciphertext: item.plaintext === undefined ? EMPTY : encrypt(recordId, item.type, item.plaintext),
            bodyDigest: item.digest,
            // A deletion the source did not date (a REST listing that no longer showed the item,
            // which a listing walked while items move between pages can get wrong) keeps the
            // last source time: when the source lists the item again, it comes back. Dated
            // with our clock, only a later source change could revive it (issue #17's lost records).
            sourceUpdatedAt:
              item.plaintext === undefined && !item.sourceTimed && previous
                ? previous.sourceUpdatedAt
                : item.sourceUpdatedAt,
            deleted: item.plaintext === undefined,
            version,
          });
          if (item.plaintext === undefined) counts.tombstoned += 1;
          else counts.written += 1;
        }
        await this.repository.upsert(tx, connection.personalServerId, connection.id, writes);
        await this.connectionsRepository.advance(tx, connection.id, lastWritten, toDate(request.syncedAt));
        return counts;
      })
      .catch(rethrowLockConflict);
  }

  /**
   * Each body's keyed digest (it decides "unchanged" and is stored with whatever is written)
   * and, unless the item is among `stored` (by recordKey), its ciphertext as a new record
   * under a new id; versions are set under the row lock. `stored` counts the live items left out.
   */
  private async sealFresh(
    connection: { id: string; personalServerId: string; userId: string; dataKeyId: string },
    batch: Map<string, BatchItem>,
    stored: ReadonlySet<string> = new Set(),
  ): Promise<{ key: DataKey; dataKeyId: string; personalServerId: string; fresh: RecordWrite[]; stored: number }> {
    const key = await this.keys.open(connection.dataKeyId, {
      personalServerId: connection.personalServerId,
      connectionId: connection.id,
      userId: connection.userId,
    });
    const fresh: RecordWrite[] = [];
    // The connection's part of every record's context, encoded once for the batch.
    const digestContext = recordDigestContextEncoder(connection.personalServerId, connection.id);
    const aad = recordAadEncoder(connection.personalServerId, connection.id);
    let left = 0;
    for (const [itemKey, item] of batch) {
      if (item.plaintext === undefined) continue;
      item.digest = key.digest(item.plaintext, digestContext(item.type, item.externalId));
      if (stored.has(itemKey)) {
        left += 1;
        continue;
      }
      const id = randomUUID();
      fresh.push({
        id,
        type: item.type,
        externalId: item.externalId,
        ciphertext: key.encrypt(item.plaintext, aad(id, item.type)),
        bodyDigest: item.digest,
        sourceUpdatedAt: item.sourceUpdatedAt,
        deleted: false,
        version: 0n,
      });
    }
    return { key, dataKeyId: connection.dataKeyId, personalServerId: connection.personalServerId, fresh, stored: left };
  }

  /** By digest when the stored row has one; by decrypting it otherwise (rows older than digests). */
  private sameBody(
    key: { decrypt(c: Uint8Array, aad: Uint8Array): Buffer },
    psId: string,
    connectionId: string,
    previous: StoredForWrite,
    plaintext: Buffer,
    digest: Buffer | null,
  ): boolean {
    if (previous.bodyDigest) return digest !== null && previous.bodyDigest.equals(digest);
    if (!previous.ciphertext) return false;
    try {
      return key
        .decrypt(previous.ciphertext, recordAad(psId, connectionId, previous.id, previous.type))
        .equals(plaintext);
    } catch {
      return false; // unreadable (tampered) rows are simply overwritten
    }
  }

  /** Live records per type of the person's connection; another person's (or none) is connection_not_found. */
  async countByType(userId: string, connectionId: string): Promise<{ type: string; count: bigint }[]> {
    const counts = await this.repository.countByType(userId, connectionId);
    if (!counts) throw new AppError('connection_not_found');
    return counts;
  }

  /**
   * One page for the app holding a grant. The grant (org, app, connection, active, types)
   * and this shard's ownership are checked in the same statement that reads the page; the
   * gateway's own checks are not trusted here.
   */
  async query(request: QueryRecordsRequest): Promise<QueryPage> {
    const type = request.type === '' ? undefined : request.type;
    if (type !== undefined && recordType(type)?.retired !== undefined) {
      // Whatever a grant not yet migrated still names: nothing is read under a retired type.
      throw new AppError('record_type_retired', `Record type "${type}" is retired; read its successor instead`);
    }
    let { grant, records } = await this.page(request, type);
    if (grant && grant.recordsVersion < CATALOG_VERSION) {
      // Stored before the current catalog (a connection this shard had not reached yet, or
      // one a rebalance brought here): migrated now, before anything is read from it.
      await this.migrations.migrateConnection(request.connectionId);
      ({ grant, records } = await this.page(request, type));
    }
    if (!grant) {
      const shard = await this.repository.grantShard(request.orgId, request.applicationId, request.connectionId);
      if (shard !== undefined && shard !== this.directory.shardId)
        throw new AppError('wrong_shard', `The connection is served by shard ${shard}`);
      throw new AppError('connection_not_found');
    }
    if (grant.state !== 'active') throw new AppError('grant_revoked', 'The user or the application revoked this grant');
    // Written out, as is the answer below: a spread with one more property takes V8's slow
    // object-clone path, ~3 µs here and ~1.3 µs there per query (docs/perf/README.md, fifth session).
    const owner = {
      personalServerId: grant.personalServerId,
      connectionId: request.connectionId,
      userId: grant.userId,
      dataKeyId: grant.dataKeyId,
    };
    // The key is opened for every query (cached), so the grant's seal is checked on every one.
    const key = await this.keys.open(grant.dataKeyId, owner);
    const sealed = {
      id: grant.id,
      connectionId: request.connectionId,
      orgId: request.orgId,
      applicationId: request.applicationId,
      userId: grant.grantUserId,
      scopes: grant.scopes,
      types: grant.types,
      consentNonce: grant.consentNonce,
    };
    if (grant.grantUserId !== grant.userId || !grantSealMatches(key, sealed, grant.seal)) {
      // Not a grant this service registered (written or changed in SQL): as if there were none.
      this.logger.warn(
        { grantId: grant.id, connectionId: request.connectionId, applicationId: request.applicationId },
        'refused an active grant whose seal does not match its row',
      );
      throw new AppError('connection_not_found');
    }
    // A grant with NULL types never matches its seal (above), so `types` is there.
    if (type !== undefined && !grant.types?.includes(type)) {
      throw new AppError(
        'scope_not_granted',
        `Record type "${type}" is not covered by the scopes granted to this application`,
      );
    }

    const fields = request.fields.length > 0 ? new Set(request.fields) : undefined;
    // Room around the page for its reply's fields: the handler's reply is written around it.
    const { recordsJson, nextCursor } = await this.render(records, request.limit, owner, fields, key, QUERY_REPLY_ROOM);
    return { recordsJson, nextCursor, syncedAt: grant.syncedAt };
  }

  /** The grant and one page of records, read in one statement (RecordsRepository.page). */
  private page(request: QueryRecordsRequest, type: string | undefined) {
    const afterVersion = decodeCursor(request.cursor);
    const since = request.sinceMs > 0n ? new Date(Number(request.sinceMs)) : undefined;
    return this.repository.page({
      shard: this.directory.shardId,
      orgId: request.orgId,
      applicationId: request.applicationId,
      connectionId: request.connectionId,
      type,
      policyTypes: type === undefined && request.policyTypes.length > 0 ? request.policyTypes : undefined,
      since,
      afterVersion,
      limit: request.limit,
      // A listing from the start skips tombstones; a change feed (since/cursor) needs them.
      includeDeleted: since !== undefined || afterVersion > 0n,
    });
  }

  /**
   * One page of the person's own records of their connection, decrypted: the portal's export.
   * Only the person's own connection on this shard (the caller resolved the person from their
   * session); anything else is connection_not_found, or wrong_shard when another shard owns it.
   */
  async exportPage(
    userId: string,
    connectionId: string,
    cursor: string,
    limit: number,
  ): Promise<{ recordsJson: Buffer; nextCursor: string }> {
    const page = await this.repository.ownerPage(
      this.directory.shardId,
      userId,
      connectionId,
      decodeCursor(cursor),
      limit,
    );
    if (page === 'elsewhere') throw new AppError('wrong_shard', 'Another shard serves this connection');
    if (!page) throw new AppError('connection_not_found');
    return this.render(page.records, limit, { ...page.connection, userId, connectionId }, undefined);
  }

  /**
   * Records as the API returns them, bodies decrypted under the connection's key (opened
   * once): a JSON array as bytes, which the gateway splices into its answer as they are. Each
   * decrypted body goes in as the bytes it is (it is JSON the catalog validated on write),
   * never decoded to a string and encoded again. The text between bodies is kept as strings,
   * measured as it is made, and everything is written once into one buffer of the page's size
   * (a Buffer per record joined by `Buffer.concat` was about a quarter of the page's work outside
   * AES-GCM).
   */
  private async render(
    records: StoredRecord[],
    limit: number,
    owner: { personalServerId: string; connectionId: string; userId: string; dataKeyId: string },
    fields: Set<string> | undefined,
    opened?: DataKey,
    room?: Room,
  ): Promise<{ recordsJson: Buffer; nextCursor: string }> {
    const key =
      opened ??
      (records.some((r) => !r.deleted)
        ? await this.keys.open(owner.dataKeyId, {
            personalServerId: owner.personalServerId,
            connectionId: owner.connectionId,
            userId: owner.userId,
          })
        : undefined);
    // Consumed by decrypt before the next record's: one buffer for the page, its fixed part
    // remembered with the connection's key (record-aad.ts).
    const aad = recordAadScratch(owner.personalServerId, owner.connectionId, key);
    const parts: (string | Buffer)[] = [];
    let size = 0;
    let before = '[';
    // A page is mostly of one type: its JSON is made once, not per record.
    let type = '';
    let typeJson = '""';
    for (const record of records) {
      if (record.type !== type) typeJson = JSON.stringify((type = record.type));
      const head = `${before}{"id":"${record.id}","type":${typeJson},"externalId":${JSON.stringify(record.externalId)},"updatedAt":"${record.updatedAt}","sourceUpdatedAt":"${record.sourceUpdatedAt}","deleted":${record.deleted},"data":`;
      before = '},';
      if (record.deleted) {
        parts.push(`${head}null`);
        size += Buffer.byteLength(head) + 4;
        continue;
      }
      // Opened above whenever the page holds a live record.
      if (!key) throw new AppError('internal', 'The data key was not opened for a live record');
      const plaintext = key.decrypt(record.ciphertext, aad(record.id, record.type));
      const body = fields ? project(plaintext, fields) : plaintext;
      parts.push(head, body);
      size += Buffer.byteLength(head) + (typeof body === 'string' ? Buffer.byteLength(body) : body.length);
    }
    const end = records.length === 0 ? '[]' : '}]';
    parts.push(end);
    size += end.length;
    // Written into size + 4 bytes; anything but exactly `size` written is `internal` (page-bytes.ts).
    const recordsJson = writeParts(parts, size, room);
    const last = records.at(-1);
    return {
      recordsJson,
      // A full page may have a next one; a short page is the end ('' = none). To pick up
      // later changes, an app asks again with `since` (or keeps paging from a full page).
      nextCursor: last && records.length === limit ? encodeCursor(BigInt(last.version)) : '',
    };
  }
}

function project(plaintext: Buffer, fields: Set<string>): string {
  const body = JSON.parse(plaintext.toString('utf8')) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const field of fields) if (Object.hasOwn(body, field)) out[field] = body[field];
  return JSON.stringify(out);
}
