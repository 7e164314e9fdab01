import { type CopyColumn, copyRowsBinaryCommitted } from '@context-gateway/database';
import { AppError } from '@context-gateway/errors';
import type { HashReader, NodeId } from '@context-gateway/merkle-log';
import type pg from 'pg';

import type { SearchColumns } from './audit-event-codec.js';
import { SEARCH_COPY_COLUMNS } from './event-decoding.js';

/** Every runtime query of the service runs as this role: SELECT and INSERT on the log, nothing else. */
export const WRITER_ROLE = 'audit_writer';
/** Completed subtrees at this level and above are stored; lower ones are recomputed from leaves. */
export const MIN_STORED_NODE_LEVEL = 4;

export interface NewEntry {
  seq: number;
  /** The event's search columns, encoded by the decoder (SEARCH_COPY_COLUMNS). */
  searchFields: Uint8Array;
  /** When the event happened (for the lag metric; the stored column is inside searchFields). */
  occurredAtMs: number;
  entry: Buffer;
  leafHash: Buffer;
}

export interface StoredCheckpoint {
  treeSize: number;
  rootHash: Buffer;
  note: string;
  keyId: string;
  createdAt: Date;
}

export interface EntryRow extends SearchColumns {
  seq: number;
  eventId: string;
  entry: Buffer;
  leafHash: Buffer;
  recordedAt: Date;
}

export interface SearchFilter {
  /** One org, or (empty) every org — then userId must be set (the caller's own entries). */
  orgId?: string;
  from?: Date;
  to?: Date;
  applicationId?: string;
  userId?: string;
  integration?: string;
  capability?: string;
  outcome?: string;
  action?: string;
  /** Keyset cursor: entries strictly older than (occurredAt, seq). */
  before?: { occurredAt: Date; seq: number };
  limit: number;
}

export type Queryable = Pick<pg.ClientBase, 'query'>;

/** What an append writes, in the order NewEntry's values are listed (recorded_at takes its default). */
const ENTRY_COPY_COLUMNS: CopyColumn[] = [
  { name: 'seq', type: 'int8' },
  { names: SEARCH_COPY_COLUMNS.map((c) => c.name), type: 'encoded' },
  { name: 'entry', type: 'bytea' },
  { name: 'leaf_hash', type: 'bytea' },
];

const ENTRY_COLUMNS = `seq, event_id, org_id, occurred_at, application_id, user_id, integration, capability, action, outcome, entry, leaf_hash, recorded_at`;

function toEntryRow(r: Record<string, unknown>): EntryRow {
  return {
    seq: Number(r.seq),
    eventId: r.event_id as string,
    orgId: r.org_id as string | null,
    occurredAt: r.occurred_at as Date,
    applicationId: r.application_id as string | null,
    userId: r.user_id as string | null,
    integration: r.integration as string | null,
    capability: r.capability as string | null,
    action: r.action as string,
    outcome: r.outcome as string,
    entry: r.entry as Buffer,
    leafHash: r.leaf_hash as Buffer,
    recordedAt: r.recorded_at as Date,
  };
}

function toCheckpoint(r: Record<string, unknown>): StoredCheckpoint {
  return {
    treeSize: Number(r.tree_size),
    rootHash: r.root_hash as Buffer,
    note: r.note as string,
    keyId: r.key_id as string,
    createdAt: r.created_at as Date,
  };
}

/**
 * The log's SQL: the only place that knows its tables. Raw SQL through pg rather than
 * Prisma: appends are multi-thousand-row binary COPYs (a Prisma createMany per batch costs
 * several times more), and the writer's queries must run on the one connection that holds
 * the writer lock.
 */
export class LogRepository {
  /** Runs `fn` on a pooled connection switched to the writer role. */
  static async asWriterRole<T>(pool: pg.Pool, fn: (db: Queryable) => Promise<T>): Promise<T> {
    const client = await pool.connect();
    try {
      await client.query(`SET ROLE ${WRITER_ROLE}`);
      return await fn(client);
    } finally {
      await client.query('RESET ROLE').then(
        () => client.release(),
        (error: Error) => client.release(error),
      );
    }
  }

  // --- writer (one connection, holding the advisory lock) --------------------------------

  /** Session-level advisory lock per schema: the single-writer guarantee. */
  static async tryWriterLock(db: Queryable): Promise<boolean> {
    const { rows } = await db.query<{ locked: boolean }>(
      `SELECT pg_try_advisory_lock(hashtextextended('context-gateway:audit-writer:' || current_schema(), 0)) AS locked`,
    );
    return rows[0]?.locked === true;
  }

  static async head(db: Queryable): Promise<{ size: number; lastLeafHash: Buffer | undefined }> {
    // seq is a bigint: pg hands it over as a string.
    const { rows } = await db.query<{ seq: string; leaf_hash: Buffer }>(
      `SELECT seq, leaf_hash FROM audit_entries ORDER BY seq DESC LIMIT 1`,
    );
    const [last] = rows;
    if (!last) return { size: 0, lastLeafHash: undefined };
    return { size: Number(last.seq) + 1, lastLeafHash: last.leaf_hash };
  }

  static async existingEventIds(db: Queryable, eventIds: string[]): Promise<Set<string>> {
    if (eventIds.length === 0) return new Set();
    const { rows } = await db.query<{ event_id: string }>(
      `SELECT event_id FROM audit_entries WHERE event_id = ANY($1::uuid[])`,
      [eventIds],
    );
    return new Set(rows.map((r) => r.event_id));
  }

  /**
   * One batch in one transaction: the entries by binary COPY and the subtree hashes they
   * completed, in one simple query (copyRowsBinaryCommitted), which Postgres runs as one
   * implicit transaction. The hashes go in as literals because a simple query takes no
   * parameters; they are safe integers and hex, checked here, nothing else.
   */
  static async append(
    db: Pick<pg.ClientBase, 'query' | 'getTransactionStatus'>,
    entries: NewEntry[],
    nodes: { level: number; index: number; hash: Buffer }[],
  ): Promise<void> {
    const nodeRows = nodes.map((n) => {
      if (!Number.isSafeInteger(n.level) || !Number.isSafeInteger(n.index))
        throw new AppError('internal', `audit node ${String(n.level)}/${String(n.index)} is not an integer position`);
      return `(${n.level}, ${n.index}, decode('${n.hash.toString('hex')}', 'hex'))`;
    });
    await copyRowsBinaryCommitted(
      db,
      'audit_entries',
      ENTRY_COPY_COLUMNS,
      entries.map((e) => [e.seq, e.searchFields, e.entry, e.leafHash]),
      nodeRows.length > 0 ? `INSERT INTO audit_nodes (level, index, hash) VALUES ${nodeRows.join(', ')}` : '',
    );
  }

  static async insertCheckpoint(db: Queryable, checkpoint: Omit<StoredCheckpoint, 'createdAt'>): Promise<void> {
    await db.query(
      `INSERT INTO checkpoints (tree_size, root_hash, note, key_id) VALUES ($1, $2, $3, $4) ON CONFLICT (tree_size) DO NOTHING`,
      [checkpoint.treeSize, checkpoint.rootHash, checkpoint.note, checkpoint.keyId],
    );
  }

  /** A witness's cosignature line on a stored checkpoint; a repeat of the same one is ignored. */
  static async insertCosignature(
    db: Queryable,
    cosignature: { treeSize: number; witnessName: string; line: string; cosignedAt: Date },
  ): Promise<void> {
    await db.query(
      `INSERT INTO witness_cosignatures (tree_size, witness_name, cosignature, cosigned_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (tree_size, witness_name) DO NOTHING`,
      [cosignature.treeSize, cosignature.witnessName, cosignature.line, cosignature.cosignedAt],
    );
  }

  // --- readers ---------------------------------------------------------------------------

  /** The largest tree `witnessName` cosigned, as far as this database knows (the witness may know more). */
  static async latestCosignedSize(db: Queryable, witnessName: string): Promise<number | undefined> {
    const { rows } = await db.query<{ n: string | null }>(
      `SELECT max(tree_size)::text AS n FROM witness_cosignatures WHERE witness_name = $1`,
      [witnessName],
    );
    const n = rows[0]?.n;
    return n === null || n === undefined ? undefined : Number(n);
  }

  /** Every stored cosignature line on the checkpoint of `treeSize`, oldest first. */
  static async cosignatureLines(db: Queryable, treeSize: number): Promise<string[]> {
    const { rows } = await db.query<{ cosignature: string }>(
      `SELECT cosignature FROM witness_cosignatures WHERE tree_size = $1 ORDER BY created_at, witness_name`,
      [treeSize],
    );
    return rows.map((r) => r.cosignature);
  }

  /** The store as libs/merkle-log reads it for proofs, roots and resuming. */
  static hashReader(db: Queryable): HashReader {
    return {
      leafHashes: (start, end) => LogRepository.leafHashes(db, start, end),
      nodeHashes: (nodes) => LogRepository.nodeHashes(db, nodes),
    };
  }

  static async leafHashes(db: Queryable, start: number, end: number): Promise<Buffer[]> {
    const { rows } = await db.query<{ leaf_hash: Buffer }>(
      `SELECT leaf_hash FROM audit_entries WHERE seq >= $1 AND seq < $2 ORDER BY seq`,
      [start, end],
    );
    return rows.map((r) => r.leaf_hash);
  }

  static async nodeHashes(db: Queryable, nodes: readonly NodeId[]): Promise<(Buffer | undefined)[]> {
    const wanted = nodes.filter((n) => n.level >= MIN_STORED_NODE_LEVEL);
    if (wanted.length === 0) return nodes.map(() => undefined);
    // index is a bigint (a string from pg), written the same way as the number in the key below.
    const { rows } = await db.query<{ level: number; index: string; hash: Buffer }>(
      `SELECT level, index, hash FROM audit_nodes WHERE (level, index) IN (SELECT * FROM unnest($1::int[], $2::bigint[]))`,
      [wanted.map((n) => n.level), wanted.map((n) => n.index)],
    );
    const found = new Map(rows.map((r): [string, Buffer] => [`${r.level}:${r.index}`, r.hash]));
    return nodes.map((n) => found.get(`${n.level}:${n.index}`));
  }

  static async latestCheckpoint(db: Queryable): Promise<StoredCheckpoint | undefined> {
    const { rows } = await db.query<Record<string, unknown>>(
      `SELECT * FROM checkpoints ORDER BY tree_size DESC LIMIT 1`,
    );
    const [row] = rows;
    return row ? toCheckpoint(row) : undefined;
  }

  static async checkpointCount(db: Queryable): Promise<number> {
    const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM checkpoints`);
    // count(*) answers exactly one row.
    return rows[0]?.n ?? 0;
  }

  static async checkpointOfSize(db: Queryable, treeSize: number): Promise<StoredCheckpoint | undefined> {
    const { rows } = await db.query<Record<string, unknown>>(`SELECT * FROM checkpoints WHERE tree_size = $1`, [
      treeSize,
    ]);
    const [row] = rows;
    return row ? toCheckpoint(row) : undefined;
  }

  static async allCheckpoints(db: Queryable): Promise<StoredCheckpoint[]> {
    const { rows } = await db.query<Record<string, unknown>>(`SELECT * FROM checkpoints ORDER BY tree_size`);
    return rows.map(toCheckpoint);
  }

  /** The entry if it is in the scope: an organization's, or (across organizations) a person's. */
  static async entryByEventId(
    db: Queryable,
    scope: { orgId: string } | { userId: string },
    eventId: string,
  ): Promise<EntryRow | undefined> {
    const [column, value] = 'orgId' in scope ? ['org_id', scope.orgId] : ['user_id', scope.userId];
    const { rows } = await db.query<Record<string, unknown>>(
      `SELECT ${ENTRY_COLUMNS} FROM audit_entries WHERE event_id = $1 AND ${column} = $2`,
      [eventId, value],
    );
    const [row] = rows;
    return row ? toEntryRow(row) : undefined;
  }

  static async search(db: Queryable, f: SearchFilter): Promise<EntryRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (f.orgId) add('org_id = ?', f.orgId);
    if (f.from) add('occurred_at >= ?', f.from);
    if (f.to) add('occurred_at < ?', f.to);
    if (f.applicationId) add('application_id = ?', f.applicationId);
    if (f.userId) add('user_id = ?', f.userId);
    if (f.integration) add('integration = ?', f.integration);
    if (f.capability) add('capability = ?', f.capability);
    if (f.outcome) add('outcome = ?', f.outcome);
    if (f.action) add('action = ?', f.action);
    // Every search is scoped to one org or one user; other filters alone would read across tenants.
    if (!f.orgId && !f.userId) throw new AppError('validation_failed', 'A search needs an org or a user');
    if (f.before) {
      params.push(f.before.occurredAt, f.before.seq);
      where.push(`(occurred_at, seq) < ($${params.length - 1}, $${params.length})`);
    }
    params.push(f.limit);
    const { rows } = await db.query<Record<string, unknown>>(
      `SELECT ${ENTRY_COLUMNS} FROM audit_entries WHERE ${where.join(' AND ')} ORDER BY occurred_at DESC, seq DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map(toEntryRow);
  }

  /** Every entry in log order, a page at a time (for verification over millions of rows). */
  static async *allEntries(db: Queryable, pageSize = 5_000): AsyncGenerator<EntryRow> {
    let next = 0;
    for (;;) {
      const { rows } = await db.query<Record<string, unknown>>(
        `SELECT ${ENTRY_COLUMNS} FROM audit_entries WHERE seq >= $1 ORDER BY seq LIMIT $2`,
        [next, pageSize],
      );
      for (const row of rows) yield toEntryRow(row);
      const last = rows.at(-1);
      if (rows.length < pageSize || !last) return;
      next = Number(last.seq) + 1;
    }
  }
}
