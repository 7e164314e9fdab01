import type { VerifiedCheckpoint } from './checkpoint.js';
import { CompactTree } from './compact-tree.js';
import { hashesEqual, leafHash } from './hash.js';
import { decodeEntryBytes, GENESIS_PREV_HASH, type LogEntry } from './log-entry.js';

/** One stored row, in the order of its index column (`ORDER BY index`). */
export interface StoredEntry {
  index: number | bigint;
  eventId: string;
  canonicalBytes: Uint8Array;
  storedLeafHash: Uint8Array;
}

type LogProblemKind = 'edited' | 'deleted' | 'inserted' | 'reordered' | 'checkpoint_mismatch';

export interface LogProblem {
  kind: LogProblemKind;
  /** Log position where the stored log first stops being the one that was appended. */
  index: number;
  /** The entry to look at, when one still exists (a deleted entry has none). */
  eventId?: string;
  detail: string;
}

export type LogVerification =
  { ok: true; treeSize: number; rootHash: Buffer; checkpointsMatched: number } | ({ ok: false } & LogProblem);

interface Row {
  column: number;
  eventId: string;
  stored: Uint8Array;
  leaf: Buffer;
  entry: LogEntry | undefined;
}

function toRow(stored: StoredEntry): Row {
  return {
    column: Number(stored.index),
    eventId: stored.eventId,
    stored: stored.storedLeafHash,
    leaf: leafHash(stored.canonicalBytes),
    entry: decodeEntryBytes(stored.canonicalBytes),
  };
}

/** One-row lookahead over the entries, which may be a database cursor: closed on exit. */
class Rows {
  private readonly iterator: AsyncIterator<StoredEntry> | Iterator<StoredEntry>;
  private buffered: Row | undefined;
  private hasBuffered = false;

  constructor(source: AsyncIterable<StoredEntry> | Iterable<StoredEntry>) {
    this.iterator = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
  }

  async peek(): Promise<Row | undefined> {
    if (!this.hasBuffered) {
      const result = await this.iterator.next();
      this.buffered = result.done ? undefined : toRow(result.value);
      this.hasBuffered = true;
    }
    return this.buffered;
  }

  async next(): Promise<Row | undefined> {
    const row = await this.peek();
    this.hasBuffered = false;
    return row;
  }

  async close(): Promise<void> {
    await this.iterator.return?.();
  }
}

/**
 * Recomputes the log from its stored rows and names the first problem. Rows carry a hash
 * chain (each entry commits to its index and its predecessor's leaf hash), which is what
 * tells the kinds apart at the first break, at position p:
 *  - edited: the content no longer hashes to the stored leaf hash, or no longer parses, or
 *    (stored hash fixed up too) the next entry's prev hash no longer matches it;
 *  - deleted: the row at p claims a later index and no row for p follows anywhere
 *    (or the log ends before a signed checkpoint's size);
 *  - reordered: the entry for p exists but further on, or the row at p belongs later and
 *    its own slot is empty;
 *  - inserted: a row claims a slot that is already taken, or sits before the entry that
 *    chains correctly to p − 1;
 *  - checkpoint_mismatch: the chain is intact but the recomputed root differs from a
 *    signed checkpoint — a consistent rewrite; the index is the first entry not covered
 *    by an earlier matching checkpoint.
 * Memory is O(log n); after the first break the rest of the stream may be read once to
 * tell a deletion from a move. Checkpoints must have been verified (VerifiedCheckpoint).
 */
export async function verifyLog(
  entries: AsyncIterable<StoredEntry> | Iterable<StoredEntry>,
  checkpoints: readonly VerifiedCheckpoint[],
): Promise<LogVerification> {
  const rows = new Rows(entries);
  try {
    return await verifyRows(
      rows,
      [...checkpoints].sort((a, b) => a.treeSize - b.treeSize),
    );
  } finally {
    await rows.close();
  }
}

async function verifyRows(rows: Rows, checkpoints: VerifiedCheckpoint[]): Promise<LogVerification> {
  const tree = CompactTree.empty();
  let prevLeaf: Buffer = GENESIS_PREV_HASH;
  let prevRow: Row | undefined;
  let nextCheckpoint = 0;
  let coveredUpTo = 0;

  const checkCheckpoints = (): LogProblem | undefined => {
    for (
      let checkpoint = checkpoints[nextCheckpoint];
      checkpoint?.treeSize === tree.size;
      checkpoint = checkpoints[++nextCheckpoint]
    ) {
      if (!hashesEqual(tree.root(), checkpoint.rootHash)) {
        const range = `entries ${coveredUpTo}..${tree.size - 1}`;
        return problem(
          'checkpoint_mismatch',
          coveredUpTo,
          `${range} chain but miss the root signed for size ${tree.size}`,
        );
      }
      coveredUpTo = tree.size;
    }
    return undefined;
  };

  for (;;) {
    const checkpointProblem = checkCheckpoints();
    if (checkpointProblem) return { ok: false, ...checkpointProblem };
    const row = await rows.next();
    if (row === undefined) break;
    const p = tree.size;
    const entry = row.entry;
    if (entry === undefined || !hashesEqual(row.leaf, row.stored)) {
      const why = entry === undefined ? 'is not a canonical log entry' : 'does not hash to its stored leaf hash';
      return { ok: false, ...problem('edited', row.column, `content of row ${row.column} ${why}`, row.eventId) };
    }
    if (entry.index !== p || !hashesEqual(entry.prevLeafHash, prevLeaf)) {
      return { ok: false, ...(await classifyBreak(rows, row, entry, p, prevLeaf, prevRow)) };
    }
    if (row.eventId !== entry.eventId || row.column !== p) {
      const detail = `row ${p}'s index or event id columns differ from its hashed content`;
      return { ok: false, ...problem('edited', p, detail, row.eventId) };
    }
    tree.append(row.leaf);
    prevLeaf = row.leaf;
    prevRow = row;
  }

  const unreached = checkpoints[nextCheckpoint];
  if (unreached !== undefined) {
    return {
      ok: false,
      kind: 'deleted',
      index: tree.size,
      detail: `the log ends at ${tree.size} entries but a checkpoint was signed for ${unreached.treeSize}`,
    };
  }
  return { ok: true, treeSize: tree.size, rootHash: tree.root(), checkpointsMatched: checkpoints.length };
}

function problem(kind: LogProblemKind, index: number, detail: string, eventId?: string): LogProblem {
  return eventId === undefined ? { kind, index, detail } : { kind, index, eventId, detail };
}

/** Does this row carry exactly the entry position p needs? */
function fitsAt(row: Row | undefined, p: number, prevLeaf: Uint8Array): boolean {
  return (
    row?.entry !== undefined &&
    row.entry.index === p &&
    hashesEqual(row.entry.prevLeafHash, prevLeaf) &&
    hashesEqual(row.leaf, row.stored)
  );
}

/** Reads the rest of the log once, looking for a row whose content claims `index`. */
async function findClaim(rows: Rows, index: number): Promise<Row | undefined> {
  for (let row = await rows.next(); row !== undefined; row = await rows.next()) {
    if (row.entry?.index === index) return row;
  }
  return undefined;
}

async function classifyBreak(
  rows: Rows,
  row: Row,
  entry: LogEntry,
  p: number,
  prevLeaf: Uint8Array,
  prevRow: Row | undefined,
): Promise<LogProblem> {
  const next = await rows.peek();

  if (entry.index === p) {
    // Right slot, wrong predecessor: either this row is extra (the true entry p follows)…
    if (fitsAt(next, p, prevLeaf)) {
      return problem('inserted', p, `row before entry ${p} does not chain to entry ${p - 1}`, row.eventId);
    }
    // …or entry p−1 was rewritten (stored hash fixed up too) and no longer is what p committed to.
    const edited = prevRow ?? row;
    const index = prevRow ? p - 1 : p;
    return problem('edited', index, `entry ${index} differs from what its successor committed to`, edited.eventId);
  }

  if (entry.index > p) {
    if (fitsAt(next, p, prevLeaf)) {
      // The rightful entry p follows: this row is either moved up from its slot or a copy.
      const duplicate = await findClaim(rows, entry.index);
      return duplicate
        ? problem('inserted', p, `a second copy of entry ${entry.index} sits at ${p}`, row.eventId)
        : problem('reordered', p, `entry ${entry.index} was moved to position ${p}`, row.eventId);
    }
    const moved = await findClaim(rows, p);
    return moved
      ? problem('reordered', p, `entry ${p} appears later, out of order`, moved.eventId)
      : problem('deleted', p, `entries ${p}..${entry.index - 1} are missing`);
  }

  // The row claims a slot already filled. If it is a different entry with the accepted
  // row's predecessor and the next row chains to it, the accepted row was the impostor;
  // otherwise (including an exact copy) this row is the extra one.
  const accepted = prevRow?.entry;
  const rival =
    prevRow !== undefined &&
    accepted !== undefined &&
    entry.index === p - 1 &&
    !hashesEqual(row.leaf, prevRow.leaf) &&
    hashesEqual(entry.prevLeafHash, accepted.prevLeafHash);
  if (rival && next?.entry?.index === p && hashesEqual(next.entry.prevLeafHash, row.leaf)) {
    return problem('inserted', p - 1, `row at ${p - 1} is not the entry ${p} chains to`, prevRow.eventId);
  }
  return problem('inserted', p, `row at ${p} repeats slot ${entry.index}`, row.eventId);
}
