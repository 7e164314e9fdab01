import { Clock } from '@context-gateway/clock';
import { type CopyColumn, copyRowsBinaryInTransaction } from '@context-gateway/database';
import { AppError } from '@context-gateway/errors';
import { PG_POOL } from '@context-gateway/service-kit';
import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import pg, { type Pool, type PoolClient } from 'pg';

import { packBytes } from './packed-bytes.js';
import { isoFromTimestamptz, parseTimestamptz, timestamptzParameter } from './pg-time.js';
import {
  BinaryColumns,
  checkBinaryColumns,
  PreparedRows,
  type RowField,
  type RowReader,
  textArrayLiteral,
} from './prepared-rows.js';

/** A record as a page reads it: times already as the API's ISO strings (recordFromFields). */
export interface StoredRecord {
  id: string;
  type: string;
  externalId: string;
  ciphertext: Buffer;
  /** `2026-12-06T16:13:00.123Z` (isoFromTimestamptz). */
  sourceUpdatedAt: string;
  updatedAt: string;
  deleted: boolean;
  /** A bigint, as text. */
  version: string;
}

/**
 * What a page reads of each record (alias `r`), in this order, a tombstone as a boolean, not
 * its time, with each column's type (the page statement's grant row has NULLs of these types).
 * The times and the version come as Postgres writes them: no Date per time per record, and no
 * to_char either — formatting two times per row in the statement cost Postgres more than
 * recordFromFields's string slices cost the shard.
 */
const RECORD_COLUMNS = [
  { name: 'id', sql: 'r.id', type: 'uuid' },
  { name: 'type', sql: 'r.type', type: 'text' },
  { name: 'external_id', sql: 'r.external_id', type: 'text' },
  { name: 'ciphertext', sql: 'r.ciphertext', type: 'bytea' },
  { name: 'source_updated_at', sql: 'r.source_updated_at', type: 'timestamptz' },
  { name: 'updated_at', sql: 'r.updated_at', type: 'timestamptz' },
  { name: 'deleted', sql: 'r.deleted_at IS NOT NULL AS deleted', type: 'boolean' },
  { name: 'version', sql: 'r.version', type: 'bigint' },
] as const;
const PAGE_RECORD_COLUMNS = RECORD_COLUMNS.map((column) => column.sql).join(', ');

/**
 * Which rows of one connection ($1) and type ($2) have one of some external ids ($3): the
 * WHERE of every lookup of a batch's items (FIND_FOR_WRITE_SQL, STORED_KEYS_SQL, the type
 * migrations'). Whatever the planner makes of it, it is never worse than one pass over the
 * connection's records of that type: with statistics, a probe of the unique index per key;
 * without them (this machine's Postgres runs with autovacuum off; with it on, a table is
 * analyzed about one naptime after its first rows) the planner cannot tell the unique index
 * from (connection, type, version) and may walk the latter once. Kept as `= ANY`: the old
 * form, a join with unnest(), was planned without statistics as a hash join over every
 * record of the connection with its ciphertext, once per batch; a LATERAL probe per key
 * walked the connection once per key then (20,000 unanalyzed rows: 5.6 s), and a seek form
 * cost ~7 µs more per key with statistics (docs/perf/README.md, "the re-sync lookup").
 * records.int-spec.ts checks the plans of both statements without statistics.
 */
const BY_KEYS_WHERE = 'WHERE connection_id = $1 AND type = $2 AND external_id = ANY($3::text[])';

/**
 * The stored state of some records of one connection and type by external id (BY_KEYS_WHERE):
 * one statement per type in a batch (usually one). The ciphertext only where there is no
 * digest to compare (rows older than digests): an unchanged re-upload reads a few dozen bytes
 * per record, not the record.
 */
export const FIND_FOR_WRITE_SQL = `
SELECT id, type, external_id, body_digest, CASE WHEN body_digest IS NULL THEN ciphertext END AS ciphertext,
       source_updated_at, updated_at, deleted_at, version
  FROM records
 ${BY_KEYS_WHERE}`;

/** What a write compares with: the stored body's digest, or its ciphertext when it has none. */
export interface StoredForWrite {
  id: string;
  type: string;
  externalId: string;
  ciphertext: Buffer | null;
  bodyDigest: Buffer | null;
  sourceUpdatedAt: Date;
  updatedAt: Date;
  deletedAt: Date | null;
  version: string;
}

/** Which of a connection's items of one type, by external id, are stored (live or tombstone): the unique key only. */
export const STORED_KEYS_SQL = `SELECT external_id FROM records ${BY_KEYS_WHERE}`;

/**
 * The fewest live items of a write for which storedKeys looks up which are stored. Measured
 * (docs/perf/README.md, "The re-sync lookup with statistics"; load 20): a 32-key lookup costs
 * ~250 µs of the shard's CPU and ~380 µs of Postgres's; a stored item sealed as new costs
 * ~16 µs (uuid, AES-GCM) and its share of the INSERT that skips it ~8 + ~12 µs. So the lookup
 * pays for itself once ~18 of the items are stored; 32 leaves room for a batch half new.
 */
const STORED_LOOKUP_MIN = 32;

/** Items' external ids grouped by type (a write's batch is usually of one type). */
function byType(keys: Iterable<{ type: string; externalId: string }>): Map<string, string[]> {
  const grouped = new Map<string, string[]>();
  for (const k of keys) {
    const ids = grouped.get(k.type);
    if (ids) ids.push(k.externalId);
    else grouped.set(k.type, [k.externalId]);
  }
  return grouped;
}

/** A record's identity within one connection, as a map key: type NUL external id. */
export function recordKey(record: { type: string; externalId: string }): string {
  return `${record.type}\u0000${record.externalId}`;
}

export interface RecordWrite {
  id: string;
  type: string;
  externalId: string;
  ciphertext: Buffer;
  /** Null for a tombstone. */
  bodyDigest: Buffer | null;
  sourceUpdatedAt: Date;
  deleted: boolean;
  version: bigint;
}

/** The grant and connection a query runs under, read in the same statement as its page. */
export interface QueryGrant {
  id: string;
  /** The grant row's own user id (the connection's, `userId`, must be the same). */
  grantUserId: string;
  /**
   * Null when the row's array is NULL (the column is nullable; only SQL writes one), as
   * node-pg decoded it: such a grant was never sealed, so its seal check fails (404).
   */
  scopes: string[] | null;
  /** grant-seal.ts; null for a revoked grant, or one that was never sealed. */
  seal: Buffer | null;
  consentNonce: string;
  state: 'active' | 'revoked';
  /** Null when the row's array is NULL, as `scopes`. */
  types: string[] | null;
  syncedAt: Date | null;
  personalServerId: string;
  userId: string;
  dataKeyId: string;
  /** The catalog version the connection's stored records are at (record-migrations/). */
  recordsVersion: number;
}

export interface PageQuery {
  shard: number;
  orgId: string;
  applicationId: string;
  connectionId: string;
  /** One type, or undefined for every type the grant covers. */
  type: string | undefined;
  /** For an untyped query: only these types (the gateway's policy allowed only some); undefined: no limit. */
  policyTypes: string[] | undefined;
  since: Date | undefined;
  afterVersion: bigint;
  limit: number;
  includeDeleted: boolean;
}

/** The grant's columns, from the CTE `g`: the page statement's first columns, in this order. */
const GRANT_COLUMN_NAMES = [
  'grant_id',
  'grant_user_id',
  'scopes',
  'seal',
  'consent_nonce',
  'state',
  'types',
  'synced_at',
  'personal_server_id',
  'user_id',
  'data_key_id',
  'records_version',
] as const;
const GRANT_COLUMNS = GRANT_COLUMN_NAMES.map((column) => `g.${column}`).join(', ');
/** A record row's grant columns: one NULL for each. */
const GRANT_NULLS = GRANT_COLUMN_NAMES.map(() => 'NULL').join(', ');
/** The grant row's record columns: one typed NULL for each (a UNION's branches agree on types). */
const RECORD_NULLS = RECORD_COLUMNS.map((column) => `NULL::${column.type} AS ${column.name}`).join(', ');

/** Where each column is in a page statement's row: the grant's, then the record's. */
function positions<N extends string>(names: readonly N[], from: number): Readonly<Record<N, number>> {
  return Object.fromEntries(names.map((name, i) => [name, from + i])) as Record<N, number>;
}
const G = positions(GRANT_COLUMN_NAMES, 0);
/** Where each record column is among RECORD_COLUMNS; in a row, after the `offset` columns before them. */
const R = positions(
  RECORD_COLUMNS.map((column) => column.name),
  0,
);
/** Where a page statement's record columns start (after the grant's). */
const PAGE_RECORD_OFFSET = GRANT_COLUMN_NAMES.length;
/** A page statement's columns, in order. */
export const PAGE_COLUMN_NAMES: readonly string[] = [
  ...GRANT_COLUMN_NAMES,
  ...RECORD_COLUMNS.map((column) => column.name),
];

/** text[]'s type id (pg.types.builtins names no array types). */
const TEXT_ARRAY = 1009;
const parseTextArray = (pg.types.getTypeParser as (oid: number, format: 'text') => unknown)(TEXT_ARRAY, 'text') as (
  text: string,
) => string[];

/**
 * The bytea columns a page statement reads in binary (the grant's seal, the record's
 * ciphertext): their bytes as they are stored, not hex text for Postgres to write and the
 * shard to decode, and half the bytes on the socket.
 */
const PAGE_BINARY = new BinaryColumns(PAGE_COLUMN_NAMES.length, [G.seal, PAGE_RECORD_OFFSET + R.ciphertext]);
/** The owner's export page's: the ciphertext. */
const OWNER_PAGE_BINARY = new BinaryColumns(RECORD_COLUMNS.length, [R.ciphertext]);

/** A column Postgres never gives NULL on this row (NOT NULL in the table, or a non-null expression). */
function present(fields: readonly RowField[], at: number): string {
  const value = fields[at];
  if (typeof value === 'string') return value;
  throw new AppError(
    'internal',
    value === null
      ? `the page statement gave NULL in column ${at + 1}, which cannot be NULL`
      : `the page statement gave bytes in column ${at + 1}, which it reads as text`,
  );
}

/** A column read as text that may be NULL. */
function textOrNull(fields: readonly RowField[], at: number): string | null {
  const value = fields[at];
  if (value === null || typeof value === 'string') return value;
  throw new AppError('internal', `the page statement gave bytes in column ${at + 1}, which it reads as text`);
}

/** A column read in binary (PAGE_BINARY, OWNER_PAGE_BINARY): its bytes, or null for NULL. */
function bytesOrNull(fields: readonly RowField[], at: number): Buffer | null {
  const value = fields[at];
  if (value === null || Buffer.isBuffer(value)) return value;
  throw new AppError('internal', `the page statement gave text in column ${at + 1}, which it reads in binary`);
}

/**
 * A record from a row's RECORD_COLUMNS, which start at `offset`: the ciphertext as its bytes
 * (read in binary), the other columns from Postgres's text of them, the times cut into the
 * API's form (isoFromTimestamptz), the version kept as text.
 */
function recordFromFields(f: readonly RowField[], offset: number): StoredRecord {
  const ciphertext = bytesOrNull(f, offset + R.ciphertext);
  if (ciphertext === null)
    throw new AppError(
      'internal',
      `the page statement gave NULL in column ${offset + R.ciphertext + 1}, which cannot be NULL`,
    );
  return {
    id: present(f, offset + R.id),
    type: present(f, offset + R.type),
    externalId: present(f, offset + R.external_id),
    ciphertext,
    sourceUpdatedAt: isoFromTimestamptz(present(f, offset + R.source_updated_at)),
    updatedAt: isoFromTimestamptz(present(f, offset + R.updated_at)),
    // A boolean's text is t or f.
    deleted: present(f, offset + R.deleted) === 't',
    version: present(f, offset + R.version),
  };
}

/** An owner's page (RecordsRepository.ownerPage): its rows are RECORD_COLUMNS alone, in version order. */
class OwnerPageReader implements RowReader<StoredRecord[]> {
  private readonly records: StoredRecord[] = [];

  row(f: readonly RowField[]): void {
    this.records.push(recordFromFields(f, 0));
  }

  finish(): StoredRecord[] {
    return this.records;
  }
}

/** Decimal bigints without sign or leading zeros (record versions), compared as numbers. */
function versionBefore(a: string, b: string): boolean {
  return a.length < b.length || (a.length === b.length && a < b);
}

/**
 * The grant and the records of a page statement's rows, read as they come (PreparedRows): each
 * value is Postgres's text, read by position (G, R), straight into what the service uses. The
 * statement yields the grant row first and the records in version order (its UNION ALL runs its
 * branches in turn, and the records come from one ordered index scan), but it has no ORDER BY —
 * sorting 21 rows with their ciphertexts cost Postgres more than checking the order here — so
 * rows out of order are put in order rather than trusted.
 */
export class PageReader implements RowReader<{ grant: QueryGrant | undefined; records: StoredRecord[] }> {
  private grant: QueryGrant | undefined;
  private readonly records: StoredRecord[] = [];
  private ordered = true;

  row(f: readonly RowField[]): void {
    if (f[PAGE_RECORD_OFFSET + R.id] === null) {
      // The grant row (grant_id is its primary key, never null there).
      if (f[G.grant_id] === null)
        throw new AppError('internal', 'the page statement gave a row that is neither grant nor record');
      const syncedAt = textOrNull(f, G.synced_at);
      const scopes = textOrNull(f, G.scopes);
      const types = textOrNull(f, G.types);
      this.grant = {
        id: present(f, G.grant_id),
        grantUserId: present(f, G.grant_user_id),
        scopes: scopes === null ? null : parseTextArray(scopes),
        seal: bytesOrNull(f, G.seal),
        consentNonce: textOrNull(f, G.consent_nonce) ?? '',
        state: present(f, G.state) as QueryGrant['state'],
        types: types === null ? null : parseTextArray(types),
        syncedAt: syncedAt === null ? null : parseTimestamptz(syncedAt),
        personalServerId: present(f, G.personal_server_id),
        userId: present(f, G.user_id),
        dataKeyId: present(f, G.data_key_id),
        recordsVersion: Number.parseInt(present(f, G.records_version), 10),
      };
      return;
    }
    const record = recordFromFields(f, PAGE_RECORD_OFFSET);
    const previous = this.records.at(-1);
    if (previous && !versionBefore(previous.version, record.version)) this.ordered = false;
    this.records.push(record);
  }

  finish(): { grant: QueryGrant | undefined; records: StoredRecord[] } {
    const { grant, records } = this;
    // Records are only read under the grant row's own lookup (the statement's CTE).
    if (!grant && records.length > 0) throw new AppError('internal', 'the page statement read records without a grant');
    if (!this.ordered) records.sort((a, b) => (versionBefore(a.version, b.version) ? -1 : 1));
    return { grant, records };
  }
}

/**
 * The query path's one statement: grant (this org's app, this connection, a user this
 * shard owns) + connection + one page of records, in one round trip and one snapshot. The
 * grant row comes once (the CTE `g`, read once, materialised as one row), then the records,
 * which are only read when that grant is active and only of types it covers; the service
 * turns a missing or revoked grant, or a type outside it, into the public error. One prepared
 * variant per combination of filters (type, since, tombstones, policy limit) so each gets
 * a plan that uses the right index instead of one generic plan full of `$n IS NULL OR ...`.
 *
 * Shaped for Postgres's CPU (docs/perf/README.md, "The page statement's Postgres CPU"): the
 * form before — the page LEFT JOINed LATERAL to the grant, numbered with row_number() to put
 * the grant's columns on its first row only, sorted by that number, times formatted with
 * to_char — cost the backend ~30 % more per page: a WindowAgg and a Sort each copying every
 * row with its ciphertext, and two to_char per row.
 */
function pageStatement(
  typed: boolean,
  since: boolean,
  includeDeleted: boolean,
  limited: boolean,
): { text: string; order: (keyof PageParams)[] } {
  // Parameters are numbered in the order they are first needed.
  const order: (keyof PageParams)[] = ['shard', 'connectionId', 'applicationId', 'orgId', 'limit', 'afterVersion'];
  const n = (name: keyof PageParams) => {
    if (!order.includes(name)) order.push(name);
    return `$${order.indexOf(name) + 1}`;
  };
  const typeFilter = typed
    ? `r.type = ${n('type')} AND r.type = ANY(g.types)`
    : `r.type = ANY(g.types)${limited ? ` AND r.type = ANY(${n('policyTypes')}::text[])` : ''}`;
  const sinceFilter = since ? `AND r.updated_at > ${n('since')}` : '';
  const text = `
WITH g AS (
  SELECT g.id AS grant_id, g.user_id AS grant_user_id, g.scopes, g.seal, g.consent_nonce, g.state, g.types,
         c.synced_at, c.personal_server_id, c.user_id, c.data_key_id, c.records_version
    FROM grants g
    JOIN connections c ON c.id = g.connection_id
    JOIN personal_servers p ON p.id = c.personal_server_id AND p.shard = $1
   WHERE g.connection_id = $2 AND g.application_id = $3 AND g.org_id = $4
)
SELECT ${GRANT_COLUMNS}, ${RECORD_NULLS}
  FROM g
UNION ALL
SELECT ${GRANT_NULLS},
       ${PAGE_RECORD_COLUMNS}
  FROM g, LATERAL (
    SELECT r.id, r.type, r.external_id, r.ciphertext, r.source_updated_at, r.updated_at, r.deleted_at, r.version
      FROM records r
     WHERE r.connection_id = $2
       AND g.state = 'active'
       AND ${typeFilter}
       AND r.version > $6
       ${sinceFilter}
       ${includeDeleted ? '' : 'AND r.deleted_at IS NULL'}
     ORDER BY r.version
     LIMIT $5
  ) r`;
  return { text, order };
}

type PageParams = Omit<PageQuery, 'includeDeleted'>;

/**
 * A page parameter as the text Postgres reads it (PreparedRows sends text, as node-pg would
 * have made it): `since` as node-pg's UTC time (any year), the policy's types as an array literal.
 */
function pageParameter(q: PageQuery, name: keyof PageParams): string | null {
  switch (name) {
    case 'since':
      return q.since === undefined ? null : timestamptzParameter(q.since);
    case 'policyTypes':
      return q.policyTypes === undefined ? null : textArrayLiteral(q.policyTypes);
    case 'afterVersion':
      return q.afterVersion.toString();
    case 'shard':
    case 'limit':
      return String(q[name]);
    default:
      return q[name] ?? null;
  }
}

/** An owner's page ($1 connection, $2 after version, $3 limit): RECORD_COLUMNS alone, in version order. */
const OWNER_PAGE_SQL = `
SELECT ${PAGE_RECORD_COLUMNS}
  FROM records r
 WHERE r.connection_id = $1 AND r.deleted_at IS NULL AND r.version > $2
 ORDER BY r.version
 LIMIT $3`;

const STATEMENTS = new Map<string, { text: string; order: (keyof PageParams)[] }>();
for (const typed of [true, false])
  for (const since of [true, false])
    for (const del of [true, false])
      for (const limited of [true, false])
        STATEMENTS.set(`${typed}${since}${del}${limited}`, pageStatement(typed, since, del, limited));

/**
 * What a new record's COPY writes; `updated_at` takes its column default (Postgres's
 * clock_timestamp() as each row is written, as the INSERT does) and `deleted_at` stays null
 * (a new record is never a tombstone).
 */
const COPY_COLUMNS: readonly CopyColumn[] = [
  { name: 'id', type: 'uuid' },
  { name: 'personal_server_id', type: 'uuid' },
  { name: 'connection_id', type: 'uuid' },
  { name: 'type', type: 'text' },
  { name: 'external_id', type: 'text' },
  { name: 'ciphertext', type: 'bytea' },
  { name: 'body_digest', type: 'bytea' },
  { name: 'source_updated_at', type: 'timestamptz' },
  { name: 'version', type: 'int8' },
];

/**
 * The unique key a new record's COPY runs into when the connection has one of its items
 * already (migration 20261125082923_init). Only this refusal sends the batch to the INSERT;
 * any other (records_pkey: an id collision) fails the write.
 */
const RECORD_KEY = 'records_connection_id_type_external_id_key';

/** How many connections `RecordsRepository` remembers as "its last new records were all new". */
const ALL_NEW_REMEMBERED = 10_000;

/**
 * For how long after a connection's last all-new batch its next one is guessed all new too.
 * An initial sync sends its batches back to back (seconds apart); a periodic sync comes
 * minutes later, and its first batch is mostly items the connection has: guessed wrong, the
 * refused COPY makes Postgres log an ERROR naming the connection and the item's external id.
 */
const ALL_NEW_FOR_MS = 30_000;

/** `records`: encrypted bodies with routing/filtering columns in clear. */
@Injectable()
export class RecordsRepository implements OnModuleInit {
  /**
   * Connections whose last insertNew found every row new (an initial sync, a growing
   * history), with when it did (clock ms): their next batch within ALL_NEW_FOR_MS is tried
   * with COPY first. A hint only: a batch it gets wrong costs one COPY that fails at its
   * first known row and is rolled back; a connection not in it (forgotten, or too long ago)
   * is written with the INSERT, as every batch was before.
   */
  private readonly lastAllNew = new Map<string, number>();

  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    private readonly clock: Clock,
  ) {}

  /**
   * The page statements read their bytea columns in binary, which needs pg-protocol's patch:
   * without it every page would fail as `internal` while readiness stays green, so the shard
   * does not start unless one such read gives the bytes it should (checkBinaryColumns).
   */
  async onModuleInit(): Promise<void> {
    await checkBinaryColumns(this.pool);
  }

  async page(q: PageQuery): Promise<{ grant: QueryGrant | undefined; records: StoredRecord[] }> {
    const limited = q.type === undefined && q.policyTypes !== undefined;
    const key = `${q.type !== undefined}${q.since !== undefined}${q.includeDeleted}${limited}`;
    const statement = STATEMENTS.get(key);
    // Every combination is prepared above, at module load.
    if (!statement) throw new AppError('internal', `no page statement for ${key}`);
    const values = statement.order.map((name) => pageParameter(q, name));
    return PreparedRows.run(this.pool, {
      name: `ps_page_${key}`,
      text: statement.text,
      values,
      columns: PAGE_COLUMN_NAMES.length,
      binary: PAGE_BINARY,
      reader: new PageReader(),
    });
  }

  /** Where the (org, app, connection) grant lives, when page() found none on this shard. */
  async grantShard(orgId: string, applicationId: string, connectionId: string): Promise<number | undefined> {
    const { rows } = await this.pool.query<{ shard: number }>(
      `SELECT p.shard FROM grants g JOIN connections c ON c.id = g.connection_id JOIN personal_servers p ON p.id = c.personal_server_id
        WHERE g.connection_id = $1 AND g.application_id = $2 AND g.org_id = $3`,
      [connectionId, applicationId, orgId],
    );
    return rows[0]?.shard;
  }

  /**
   * One page of the user's own connection's live records in change order, with what opens
   * them; undefined when the connection is not this user's, `elsewhere` when another shard
   * owns it. (The owner's export: no grant is involved, the person is the caller.)
   */
  async ownerPage(
    shard: number,
    userId: string,
    connectionId: string,
    afterVersion: bigint,
    limit: number,
  ): Promise<
    { connection: { personalServerId: string; dataKeyId: string }; records: StoredRecord[] } | 'elsewhere' | undefined
  > {
    const owner = await this.pool.query<{ personal_server_id: string; data_key_id: string; shard: number }>(
      `SELECT c.personal_server_id, c.data_key_id, p.shard
         FROM connections c JOIN personal_servers p ON p.id = c.personal_server_id
        WHERE c.id = $1 AND c.user_id = $2`,
      [connectionId, userId],
    );
    const connection = owner.rows[0];
    if (!connection) return undefined;
    if (connection.shard !== shard) return 'elsewhere';
    const records = await PreparedRows.run(this.pool, {
      name: 'ps_owner_page',
      text: OWNER_PAGE_SQL,
      values: [connectionId, afterVersion.toString(), String(limit)],
      columns: RECORD_COLUMNS.length,
      binary: OWNER_PAGE_BINARY,
      reader: new OwnerPageReader(),
    });
    return {
      connection: { personalServerId: connection.personal_server_id, dataKeyId: connection.data_key_id },
      records,
    };
  }

  /**
   * Live records per type of the user's connection, largest first; undefined when the
   * connection is not this user's (or does not exist). Tombstones are not counted.
   */
  async countByType(userId: string, connectionId: string): Promise<{ type: string; count: bigint }[] | undefined> {
    const { rows } = await this.pool.query<{ type: string | null; count: string }>(
      `SELECT r.type, count(r.id) AS count
         FROM connections c
         LEFT JOIN records r ON r.connection_id = c.id AND r.deleted_at IS NULL
        WHERE c.id = $1 AND c.user_id = $2
        GROUP BY r.type
        ORDER BY count(r.id) DESC, r.type`,
      [connectionId, userId],
    );
    if (rows.length === 0) return undefined;
    return rows.flatMap((r) => (r.type === null ? [] : [{ type: r.type, count: BigInt(r.count) }]));
  }

  /**
   * Which of a write's live items the connection has stored already (by recordKey), read
   * outside the write's transaction (its committed state): the items to leave out of sealing
   * as new records. Only a hint, never a decision: one written after this read is found by
   * the INSERT's conflict check under the lock as before. A stored row goes away only with
   * its connection (the write is then refused, or sealed again under the new connection's
   * key) or as a record of a type a migration retires (record-migrations.service.ts), so an
   * item found here is not expected to be gone under the lock; if it is, the write seals it
   * there under a new id (defensive; records.int-spec.ts).
   * Empty, with no query, while the connection's batches are guessed all new (an initial
   * sync's), and for fewer than STORED_LOOKUP_MIN items (a webhook's one record: the query
   * would cost more than sealing them).
   */
  async storedKeys(connectionId: string, items: readonly { type: string; externalId: string }[]): Promise<Set<string>> {
    const stored = new Set<string>();
    if (items.length < STORED_LOOKUP_MIN || this.guessesAllNew(connectionId)) return stored;
    for (const [type, externalIds] of byType(items)) {
      const { rows } = await this.pool.query<{ external_id: string }>(STORED_KEYS_SQL, [
        connectionId,
        type,
        externalIds,
      ]);
      for (const row of rows) stored.add(recordKey({ type, externalId: row.external_id }));
    }
    return stored;
  }

  /** Whether the connection's last batch of new records, under ALL_NEW_FOR_MS ago, was all new. */
  private guessesAllNew(connectionId: string): boolean {
    const allNewAt = this.lastAllNew.get(connectionId);
    return allNewAt !== undefined && this.clock.now() - allNewAt < ALL_NEW_FOR_MS;
  }

  /** The stored rows for a write batch's (type, external id) pairs. */
  async findForWrite(
    tx: PoolClient,
    connectionId: string,
    keys: { type: string; externalId: string }[],
  ): Promise<StoredForWrite[]> {
    const rows: {
      id: string;
      type: string;
      external_id: string;
      ciphertext: Buffer | null;
      body_digest: Buffer | null;
      source_updated_at: Date;
      updated_at: Date;
      deleted_at: Date | null;
      version: string;
    }[] = [];
    for (const [type, externalIds] of byType(keys)) {
      rows.push(...(await tx.query<(typeof rows)[number]>(FIND_FOR_WRITE_SQL, [connectionId, type, externalIds])).rows);
    }
    return rows.map((r) => ({
      id: r.id,
      type: r.type,
      externalId: r.external_id,
      ciphertext: r.ciphertext,
      bodyDigest: r.body_digest,
      sourceUpdatedAt: r.source_updated_at,
      updatedAt: r.updated_at,
      deletedAt: r.deleted_at,
      version: r.version,
    }));
  }

  /**
   * Inserts the rows whose (type, external id) the connection does not have yet and skips
   * the others; returns the keys inserted (`type` NUL `externalId`). The conflict target is
   * the unique key only, so anything else (an id collision) still fails loudly.
   *
   * Nothing is returned per row: the count says "all" (an initial sync) or "none" (a batch
   * of known records) almost always, and only a mixed batch reads back which rows went in —
   * by the fresh ids, which only an inserted row carries (a known one keeps its own).
   * RETURNING every row's type and external id cost Postgres and the shard a text row per
   * record for those two common answers. When the connection's last batch was all new and
   * recent, this one is tried with COPY first (copyNew), which either writes every row or none.
   * `othersStored`: the write left items out of `rows` as stored already (storedKeys), so
   * its batch was not all new and the next one is not guessed so.
   */
  async insertNew(
    tx: PoolClient,
    personalServerId: string,
    connectionId: string,
    rows: RecordWrite[],
    othersStored = false,
  ): Promise<Set<string>> {
    // A batch whose other items are stored already is not all new, whatever this part finds.
    if (othersStored) this.lastAllNew.delete(connectionId);
    if (rows.length === 0) return new Set();
    if (this.guessesAllNew(connectionId) && (await this.copyNew(tx, personalServerId, connectionId, rows))) {
      this.rememberAllNew(connectionId);
      return new Set(rows.map(recordKey));
    }
    const count = await this.insertRows(tx, personalServerId, connectionId, rows, 'DO NOTHING');
    if (count === rows.length) {
      if (!othersStored) this.rememberAllNew(connectionId);
      return new Set(rows.map(recordKey));
    }
    this.lastAllNew.delete(connectionId);
    if (count === 0) return new Set();
    const { rows: inserted } = await tx.query<{ type: string; external_id: string }>(
      'SELECT type, external_id FROM records WHERE id = ANY($1::uuid[]) AND connection_id = $2',
      [rows.map((r) => r.id), connectionId],
    );
    return new Set(inserted.map((r) => recordKey({ type: r.type, externalId: r.external_id })));
  }

  /** Notes that the connection's batch just written was all new (bounded: forgets all when full). */
  private rememberAllNew(connectionId: string): void {
    if (!this.lastAllNew.has(connectionId) && this.lastAllNew.size >= ALL_NEW_REMEMBERED) this.lastAllNew.clear();
    this.lastAllNew.set(connectionId, this.clock.now());
  }

  /**
   * All of `rows` with one binary COPY, when none of them is stored yet; false (nothing
   * written, the transaction usable) when one is — the unique key refuses it, and the COPY
   * is rolled back to a savepoint. For Postgres a COPY row costs ~3.5 ms of CPU per 1,000
   * less than an INSERT … unnest() row (docs/perf/README.md, fifth pass: no array literals
   * to parse, no ON CONFLICT probe before each row's insert), and the shard encodes the rows
   * straight into one buffer instead of node-pg's text arrays. Any other error (an id
   * collision included) fails the write.
   *
   * The savepoint, the COPY and the release go as one query (copyRowsBinaryInTransaction):
   * one round trip per batch where there were three, and no stream between.
   * The savepoint is released either way: what follows (the connection's advance()) then
   * updates the row the transaction holds FOR UPDATE from the transaction itself, not from a
   * subtransaction, which would make Postgres create a MultiXact for that row every batch.
   */
  private async copyNew(
    tx: PoolClient,
    personalServerId: string,
    connectionId: string,
    rows: RecordWrite[],
  ): Promise<boolean> {
    if (rows.some((r) => r.deleted)) return false;
    try {
      // SAVEPOINT, COPY and RELEASE in one round trip; a refused COPY skips the RELEASE.
      await copyRowsBinaryInTransaction(
        tx,
        'records',
        COPY_COLUMNS,
        rows.map((r) => [
          r.id,
          personalServerId,
          connectionId,
          r.type,
          r.externalId,
          r.ciphertext,
          r.bodyDigest,
          r.sourceUpdatedAt,
          r.version,
        ]),
        'copy_new',
      );
    } catch (error) {
      if ((error as { constraint?: unknown }).constraint !== RECORD_KEY) throw error;
      await tx.query('ROLLBACK TO SAVEPOINT copy_new');
      await tx.query('RELEASE SAVEPOINT copy_new');
      this.lastAllNew.delete(connectionId);
      return false;
    }
    return true;
  }

  /** Idempotent upsert by (connection, type, external id); `updated_at` is the commit's clock. */
  async upsert(tx: PoolClient, personalServerId: string, connectionId: string, rows: RecordWrite[]): Promise<void> {
    if (rows.length === 0) return;
    await this.insertRows(
      tx,
      personalServerId,
      connectionId,
      rows,
      `DO UPDATE SET ciphertext = EXCLUDED.ciphertext, body_digest = EXCLUDED.body_digest, source_updated_at = EXCLUDED.source_updated_at, updated_at = clock_timestamp(),
                     deleted_at = EXCLUDED.deleted_at, version = EXCLUDED.version`,
    );
  }

  /** The rows as one INSERT … SELECT FROM unnest(…); how many went in. */
  private async insertRows(
    tx: PoolClient,
    personalServerId: string,
    connectionId: string,
    rows: RecordWrite[],
    onConflict: string,
  ): Promise<number> {
    const ciphertexts = packBytes(rows.map((r) => r.ciphertext));
    const digests = packBytes(rows.map((r) => r.bodyDigest));
    // Source times as epoch milliseconds (exact: the column keeps milliseconds): a Date[]
    // parameter is formatted by node-pg element by element in local time with its offset.
    const result = await tx.query(
      `INSERT INTO records (id, personal_server_id, connection_id, type, external_id, ciphertext, body_digest, source_updated_at, updated_at, deleted_at, version)
       SELECT k.id, $1, $2, k.type, k.external_id, substring($6::bytea FROM k.c_at FOR k.c_length),
              substring($10::bytea FROM k.d_at FOR k.d_length), timestamptz 'epoch' + k.source_ms * interval '1 millisecond',
              clock_timestamp(), CASE WHEN k.deleted THEN clock_timestamp() END, k.version
         FROM unnest($3::uuid[], $4::text[], $5::text[], $11::int[], $12::int[], $7::bigint[], $8::bool[], $9::bigint[], $13::int[], $14::int[])
           AS k(id, type, external_id, c_at, c_length, source_ms, deleted, version, d_at, d_length)
       ON CONFLICT (connection_id, type, external_id) ${onConflict}`,
      [
        personalServerId,
        connectionId,
        rows.map((r) => r.id),
        rows.map((r) => r.type),
        rows.map((r) => r.externalId),
        ciphertexts.bytes,
        rows.map((r) => r.sourceUpdatedAt.getTime()),
        rows.map((r) => r.deleted),
        rows.map((r) => r.version.toString()),
        digests.bytes,
        ciphertexts.at,
        ciphertexts.lengths,
        digests.at,
        digests.lengths,
      ],
    );
    return result.rowCount ?? 0;
  }
}
