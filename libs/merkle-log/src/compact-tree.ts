import { EMPTY_ROOT_HASH, HASH_SIZE, isHash, nodeHash } from './hash.js';
import { assertCount, invalid, type NodeId, popCount } from './tree-math.js';

/** Called for every perfect subtree an append completes, so a store can cache its hash. */
export type NodeCompleted = (node: NodeId, hash: Buffer) => void;

const FORMAT_VERSION = 1;
const HEADER_SIZE = 1 + 8;

/**
 * The append-only tree reduced to its frontier: the roots of the perfect subtrees that
 * tile [0, size), largest (leftmost) first — one per set bit of size, so O(log n) hashes.
 * This is what lets the audit service keep the root current over millions of entries
 * without holding the leaves, and resume after a restart from the serialized frontier
 * stored with its last checkpoint.
 */
export class CompactTree {
  private constructor(
    private treeSize: number,
    private readonly frontier: Buffer[],
  ) {}

  static empty(): CompactTree {
    return new CompactTree(0, []);
  }

  static fromLeafHashes(leafHashes: Iterable<Uint8Array>): CompactTree {
    const tree = CompactTree.empty();
    for (const leaf of leafHashes) tree.append(leaf);
    return tree;
  }

  get size(): number {
    return this.treeSize;
  }

  /** Adds the next leaf hash; amortized two hash operations per append. */
  append(leafHash: Uint8Array, onNodeCompleted?: NodeCompleted): void {
    if (!isHash(leafHash)) invalid('leaf hash must be 32 bytes');
    const position = this.treeSize;
    let hash: Buffer = Buffer.from(leafHash);
    let level = 0;
    // Each trailing 1 bit of the old size is a same-sized left sibling waiting for a partner.
    for (let rest = position; rest % 2 === 1; rest = (rest - 1) / 2) {
      const left = this.frontier.pop();
      if (left === undefined) throw new Error(`the frontier holds fewer subtrees than size ${position} has set bits`);
      hash = nodeHash(left, hash);
      level += 1;
      onNodeCompleted?.({ level, index: Math.floor(position / 2 ** level) }, hash);
    }
    this.frontier.push(hash);
    this.treeSize = position + 1;
  }

  /** MTH(D[size]): the frontier folded right to left (RFC 9162 §2.1.1 for unbalanced trees). */
  root(): Buffer {
    let i = this.frontier.length - 1;
    let hash = this.frontier[i];
    if (hash === undefined) return Buffer.from(EMPTY_ROOT_HASH);
    // Reading below index 0 gives undefined, which ends the loop.
    for (let left = this.frontier[--i]; left !== undefined; left = this.frontier[--i]) hash = nodeHash(left, hash);
    return hash;
  }

  /** Frontier hashes, largest subtree first. Copies, so callers cannot corrupt the state. */
  frontierHashes(): Buffer[] {
    return this.frontier.map((hash) => Buffer.from(hash));
  }

  clone(): CompactTree {
    return new CompactTree(this.treeSize, this.frontierHashes());
  }

  /** version (1 byte) || size (uint64 big-endian) || frontier hashes — fits a bytea column. */
  serialize(): Buffer {
    const out = Buffer.alloc(HEADER_SIZE + this.frontier.length * HASH_SIZE);
    out.writeUInt8(FORMAT_VERSION, 0);
    out.writeBigUInt64BE(BigInt(this.treeSize), 1);
    this.frontier.forEach((hash, i) => hash.copy(out, HEADER_SIZE + i * HASH_SIZE));
    return out;
  }

  /** The tree of `size` leaves from its frontier hashes (largest subtree first), e.g. as read back from a store. */
  static fromFrontier(size: number, frontier: readonly Uint8Array[]): CompactTree {
    assertCount('tree size', size);
    if (frontier.length !== popCount(size))
      invalid(`a compact tree of size ${size} has ${popCount(size)} frontier hashes`);
    if (!frontier.every(isHash)) invalid('frontier hashes must be 32 bytes');
    return new CompactTree(
      size,
      frontier.map((hash) => Buffer.from(hash)),
    );
  }

  static deserialize(bytes: Uint8Array): CompactTree {
    const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (buffer.length < HEADER_SIZE || buffer.readUInt8(0) !== FORMAT_VERSION) {
      invalid('not a serialized compact tree (unknown version or truncated)');
    }
    const size = Number(buffer.readBigUInt64BE(1));
    assertCount('tree size', size);
    // The number of hashes is fixed by the size, so a truncated or padded frontier is caught here.
    const count = popCount(size);
    if (buffer.length !== HEADER_SIZE + count * HASH_SIZE) {
      invalid(`a compact tree of size ${size} has ${count} frontier hashes`);
    }
    const frontier: Buffer[] = [];
    for (let i = 0; i < count; i += 1) {
      const offset = HEADER_SIZE + i * HASH_SIZE;
      frontier.push(Buffer.from(buffer.subarray(offset, offset + HASH_SIZE)));
    }
    return new CompactTree(size, frontier);
  }
}

/** MTH(D[n]) of a list of leaf hashes, for any n including 0. */
export function rootHash(leafHashes: readonly Uint8Array[]): Buffer {
  return CompactTree.fromLeafHashes(leafHashes).root();
}
