import { AppError } from '@context-gateway/errors';

/**
 * A perfect subtree of the log: the 2^level leaves [index·2^level, (index+1)·2^level).
 * This is the unit a store can cache: once complete, its hash never changes.
 */
export interface NodeId {
  level: number;
  index: number;
}

/** A range of leaves [start, end) whose Merkle tree hash a proof needs. */
export interface LeafRange {
  start: number;
  end: number;
}

// Sizes and indexes are JS numbers: exact up to 2^53 leaves, far beyond any audit log.
export function assertCount(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new AppError('validation_failed', `${name} must be a non-negative safe integer`);
  }
}

export function invalid(message: string): never {
  throw new AppError('validation_failed', message);
}

/** k in RFC 9162 §2.1.1: the largest power of two smaller than n (n ≥ 2). */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** The first leaf a node covers. Multiplication, not shifts: indexes exceed 2^31. */
export function nodeStart(node: NodeId): number {
  return node.index * 2 ** node.level;
}

/**
 * Splits a range that RFC 9162's recursion can produce — start a multiple of a power of two
 * 2^j ≥ end − start — into perfect subtrees, largest first. Its MTH is then the right fold
 * of their hashes: MTH(D[a:b]) = HASH(0x01 || T1 || MTH(rest)).
 */
export function perfectSubtrees(range: LeafRange): NodeId[] {
  const nodes: NodeId[] = [];
  let start = range.start;
  let remaining = range.end - range.start;
  while (remaining > 0) {
    let width = 1;
    let level = 0;
    while (width * 2 <= remaining) {
      width *= 2;
      level += 1;
    }
    if (start % width !== 0) invalid('range is not aligned to a subtree boundary');
    nodes.push({ level, index: start / width });
    start += width;
    remaining -= width;
  }
  return nodes;
}

/** Number of set bits = number of perfect subtrees in the frontier of a tree of this size. */
export function popCount(value: number): number {
  let count = 0;
  let rest = value;
  while (rest > 0) {
    count += rest % 2;
    rest = Math.floor(rest / 2);
  }
  return count;
}
