import { canonicalJson, type JsonValue } from './canonical-json.js';
import { CompactTree } from './compact-tree.js';
import { HASH_SIZE, isHash, LEAF_HASH_PREFIX, sha256Hex } from './hash.js';
import { assertCount, invalid } from './tree-math.js';

/** Entry format version, inside the hashed bytes so a future format cannot be confused with this one. */
const ENTRY_FORMAT_VERSION = 1;

/** prevLeafHash of entry 0: there is no predecessor. */
export const GENESIS_PREV_HASH: Buffer = Buffer.alloc(HASH_SIZE);

/**
 * One audit log entry as it is hashed into the tree. Besides the event it commits to its
 * own position and to its predecessor's leaf hash — a hash chain running alongside the
 * Merkle tree — so a deleted, inserted or moved row breaks the chain at a nameable index
 * even where no checkpoint has been signed yet.
 */
export interface LogEntry {
  index: number;
  eventId: string;
  prevLeafHash: Uint8Array;
  event: JsonValue;
}

/**
 * The leaf data d(i): UTF-8 of the RFC 8785 canonical JSON of
 * `{ v: 1, index, eventId, prev: hex(prevLeafHash), event }` — keys sorted, no whitespace.
 * JSON rather than length-prefixed fields so an auditor can read a leaf with any tool and
 * re-derive its hash with a few lines of code in any language.
 */
export function canonicalEntryBytes(entry: LogEntry): Buffer {
  if (!isHash(entry.prevLeafHash)) invalid('prevLeafHash must be 32 bytes');
  return leafInput(
    entry.index,
    entry.eventId,
    hex(entry.prevLeafHash),
    Buffer.from(canonicalJson(entry.event)),
  ).subarray(1);
}

const EVENT_KEY = Buffer.from('{"event":', 'latin1');

/** A 32-byte hash in lower-case hex (a shorter view is refused, never read past its end). */
function hex(hash: Uint8Array): string {
  if (hash.byteLength !== HASH_SIZE) invalid(`a hash must be ${HASH_SIZE} bytes`);
  return Buffer.from(hash.buffer, hash.byteOffset, HASH_SIZE).toString('hex');
}

/**
 * 0x00 || d(i) in one buffer: the leaf hash's input, with the entry bytes as a view of it
 * (one allocation and one hash update per entry on the audit writer's hot path). The
 * event comes as the UTF-8 of its canonical JSON and is copied in as it is; the previous
 * leaf hash as the hex the entry spells it in (the writer keeps its last one as hex).
 */
function leafInput(index: number, eventId: string, prevLeafHashHex: string, canonicalEvent: Uint8Array): Buffer {
  assertCount('index', index);
  if (typeof eventId !== 'string' || eventId.length === 0) invalid('eventId must be a non-empty string');
  // canonicalJson({ v, index, eventId, prev, event }) spelled out: the keys in their sorted
  // order, each value serialized as canonicalJson would (log-entry.spec.ts checks the two agree).
  const rest = `,"eventId":${JSON.stringify(eventId)},"index":${index},"prev":"${prevLeafHashHex}","v":${ENTRY_FORMAT_VERSION}}`;
  const eventAt = 1 + EVENT_KEY.length;
  const restAt = eventAt + canonicalEvent.length;
  const input = Buffer.allocUnsafe(restAt + Buffer.byteLength(rest));
  input[0] = LEAF_HASH_PREFIX;
  EVENT_KEY.copy(input, 1);
  input.set(canonicalEvent, eventAt);
  input.write(rest, restAt, 'utf8');
  return input;
}

/**
 * Parses leaf data back into an entry, or returns undefined if the bytes are not exactly
 * what canonicalEntryBytes would produce (so two encodings can never share a meaning).
 */
export function decodeEntryBytes(bytes: Uint8Array): LogEntry | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const { v, index, eventId, prev, event, ...rest } = parsed as Record<string, unknown>;
  if (v !== ENTRY_FORMAT_VERSION || Object.keys(rest).length > 0 || event === undefined) return undefined;
  if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0) return undefined;
  if (typeof eventId !== 'string' || eventId.length === 0) return undefined;
  if (typeof prev !== 'string' || !/^[0-9a-f]{64}$/.test(prev)) return undefined;
  const entry: LogEntry = { index, eventId, prevLeafHash: Buffer.from(prev, 'hex'), event: event as JsonValue };
  return canonicalEntryBytes(entry).equals(Buffer.from(bytes)) ? entry : undefined;
}

/** What the audit service stores per entry. */
export interface AppendedEntry {
  index: number;
  eventId: string;
  canonicalBytes: Buffer;
  leafHash: Buffer;
}

/**
 * Builds the chain and the tree together: the audit service's write path. Resume it from
 * the frontier saved with the last checkpoint plus the last stored leaf hash.
 */
export class LogWriter {
  private constructor(
    private readonly tree: CompactTree,
    /** The last leaf's hash in hex, as the next entry's `prev` spells it. */
    private lastLeafHashHex: string,
  ) {}

  static empty(): LogWriter {
    return new LogWriter(CompactTree.empty(), hex(GENESIS_PREV_HASH));
  }

  static resume(tree: CompactTree, lastLeafHash: Uint8Array | undefined): LogWriter {
    if (tree.size === 0) return LogWriter.empty();
    if (!isHash(lastLeafHash)) invalid('resuming a non-empty log needs the last leaf hash');
    return new LogWriter(tree.clone(), hex(lastLeafHash));
  }

  get size(): number {
    return this.tree.size;
  }

  append(eventId: string, event: JsonValue, onNodeCompleted?: Parameters<CompactTree['append']>[1]): AppendedEntry {
    return this.appendCanonical(eventId, Buffer.from(canonicalJson(event)), onNodeCompleted);
  }

  /**
   * append() for an event already in canonical form — the UTF-8 of `canonicalJson(event)`,
   * computed elsewhere (the audit service does it on worker threads). Whatever bytes are
   * passed are what the leaf commits to, so they must come from canonicalJson.
   */
  appendCanonical(
    eventId: string,
    canonicalEvent: Uint8Array,
    onNodeCompleted?: Parameters<CompactTree['append']>[1],
  ): AppendedEntry {
    const index = this.tree.size;
    const input = leafInput(index, eventId, this.lastLeafHashHex, canonicalEvent);
    const hashHex = sha256Hex(input);
    const hash = Buffer.from(hashHex, 'hex');
    const canonicalBytes = input.subarray(1);
    this.tree.append(hash, onNodeCompleted);
    this.lastLeafHashHex = hashHex;
    return { index, eventId, canonicalBytes, leafHash: hash };
  }

  root(): Buffer {
    return this.tree.root();
  }

  /** The state to persist with a checkpoint (see CompactTree.serialize). */
  snapshot(): CompactTree {
    return this.tree.clone();
  }
}
