/*
 * RFC 9162 §2.1.3 (inclusion) and §2.1.4 (consistency) proofs, written here because no
 * maintained npm package implements RFC 6962/9162 proofs for Node: merkletreejs and
 * merkle-tools build Bitcoin-style trees (duplicated odd nodes, no 0x00/0x01 prefixes, no
 * consistency proofs), @sigstore/verify only verifies Rekor inclusion internally, and
 * transparency-dev/merkle is Go-only. node:crypto supplies SHA-256.
 *
 * Generation is split in two: a pure *plan* (which leaf ranges' hashes the proof lists, in
 * order) and *resolution* (getting those hashes). Every planned range decomposes into
 * O(log n) perfect subtrees, so a store that caches perfect-subtree hashes answers any
 * proof with O(log n) lookups and falls back to leaf hashes for the ones it lacks.
 */
import { CompactTree, rootHash } from './compact-tree.js';
import { EMPTY_ROOT_HASH, hashesEqual, isHash, nodeHash } from './hash.js';
import {
  assertCount,
  invalid,
  type LeafRange,
  type NodeId,
  nodeStart,
  perfectSubtrees,
  splitPoint,
} from './tree-math.js';

/**
 * Where asynchronous proof generation gets hashes — e.g. the audit service's Postgres.
 * Only `leafHashes` is required; `nodeHashes` turns O(n) leaf reads into O(log n) lookups.
 */
export interface HashReader {
  /** Leaf hashes [start, end) in log order: exactly end − start of them. */
  leafHashes(start: number, end: number): Promise<readonly Uint8Array[]>;
  /** Cached perfect-subtree hashes in the order asked, `undefined` where not stored. */
  nodeHashes?(nodes: readonly NodeId[]): Promise<readonly (Uint8Array | undefined)[]>;
}

/** In-memory leaf hashes, as an array or a lookup by index. */
export type LeafSource = readonly Uint8Array[] | ((index: number) => Uint8Array);

// --- plans -----------------------------------------------------------------

/** The ranges whose hashes make up PATH(index, D[treeSize]), in proof order (leaf upwards). */
export function inclusionPlan(index: number, treeSize: number): LeafRange[] {
  assertCount('index', index);
  assertCount('tree size', treeSize);
  if (index >= treeSize) invalid(`index ${index} is not in a tree of size ${treeSize}`);
  const topDown: LeafRange[] = [];
  let start = 0;
  let end = treeSize;
  // PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) when m < k, else PATH(m−k, D[k:n]) : MTH(D[0:k]).
  while (end - start > 1) {
    const k = splitPoint(end - start);
    if (index < start + k) {
      topDown.push({ start: start + k, end });
      end = start + k;
    } else {
      topDown.push({ start, end: start + k });
      start += k;
    }
  }
  return topDown.reverse();
}

/** The ranges whose hashes make up PROOF(m, D[n]) = SUBPROOF(m, D[n], true), in proof order. */
export function consistencyPlan(oldSize: number, newSize: number): LeafRange[] {
  assertCount('old size', oldSize);
  assertCount('new size', newSize);
  if (oldSize > newSize) invalid(`old size ${oldSize} exceeds new size ${newSize}`);
  // Nothing to prove against the empty tree or between equal trees: the proof is empty.
  if (oldSize === 0 || oldSize === newSize) return [];
  const topDown: LeafRange[] = [];
  let start = 0;
  let end = newSize;
  let oldRootIsKnown = true;
  for (;;) {
    if (oldSize === end) {
      // SUBPROOF(m, D[m], false) = {MTH(D[m])}: the verifier cannot derive this subtree itself.
      if (!oldRootIsKnown) topDown.push({ start, end });
      break;
    }
    const k = splitPoint(end - start);
    if (oldSize - start <= k) {
      topDown.push({ start: start + k, end });
      end = start + k;
    } else {
      topDown.push({ start, end: start + k });
      start += k;
      oldRootIsKnown = false;
    }
  }
  return topDown.reverse();
}

// --- resolution ------------------------------------------------------------

/** Leaves worth over-reading to merge two leaf range reads into one. */
const MAX_READ_GAP = 16;

/** MTH of a planned range from its perfect subtrees' hashes (largest first). */
function foldRange(hashes: readonly Uint8Array[]): Buffer {
  let i = hashes.length - 1;
  const rightmost = hashes[i];
  if (rightmost === undefined) throw new Error('a planned range has no subtrees');
  let hash: Buffer = Buffer.from(rightmost);
  // Reading below index 0 gives undefined, which ends the loop.
  for (let left = hashes[--i]; left !== undefined; left = hashes[--i]) hash = nodeHash(left, hash);
  return hash;
}

function leafAt(leaves: LeafSource, index: number): Uint8Array {
  const leaf = typeof leaves === 'function' ? leaves(index) : leaves[index];
  if (!isHash(leaf)) invalid(`leaf hash ${index} is missing or not 32 bytes`);
  return leaf;
}

function resolveFromLeaves(ranges: readonly LeafRange[], leaves: LeafSource): Buffer[] {
  return ranges.map((range) => {
    const slice: Uint8Array[] = [];
    for (let i = range.start; i < range.end; i += 1) slice.push(leafAt(leaves, i));
    return rootHash(slice);
  });
}

async function resolveFromReader(ranges: readonly LeafRange[], reader: HashReader): Promise<Buffer[]> {
  const perRange = ranges.map(perfectSubtrees);
  const nodes = perRange.flat();
  const cached = reader.nodeHashes ? await reader.nodeHashes(nodes) : [];
  if (reader.nodeHashes && cached.length !== nodes.length) invalid('node hash lookup returned the wrong count');

  const hashes = new Map<NodeId, Uint8Array>();
  const missing: NodeId[] = [];
  nodes.forEach((node, i) => {
    const hash = cached[i];
    if (hash === undefined) missing.push(node);
    else if (isHash(hash)) hashes.set(node, hash);
    else invalid('a cached node hash is not 32 bytes');
  });

  // Missing subtrees close together — typically the low levels around the proven leaf, with
  // only that leaf between them — are read in one range query; a few extra rows beat a round trip.
  missing.sort((a, b) => nodeStart(a) - nodeStart(b));
  const runs: { start: number; end: number; nodes: NodeId[] }[] = [];
  for (const node of missing) {
    const start = nodeStart(node);
    const end = start + 2 ** node.level;
    const last = runs[runs.length - 1];
    if (last && start - last.end <= MAX_READ_GAP) {
      last.end = end;
      last.nodes.push(node);
    } else runs.push({ start, end, nodes: [node] });
  }
  await Promise.all(
    runs.map(async (run) => {
      const leaves = await reader.leafHashes(run.start, run.end);
      if (leaves.length !== run.end - run.start)
        invalid(`leaf lookup [${run.start}, ${run.end}) returned ${leaves.length}`);
      for (const node of run.nodes) {
        const offset = nodeStart(node) - run.start;
        const slice = leaves.slice(offset, offset + 2 ** node.level);
        if (!slice.every(isHash)) invalid('a leaf hash from the store is not 32 bytes');
        hashes.set(node, rootHash(slice));
      }
    }),
  );
  return perRange.map((rangeNodes) =>
    foldRange(
      rangeNodes.map((node) => {
        const hash = hashes.get(node);
        // Every node was either found in the cache or computed from the leaves just read.
        if (hash === undefined) throw new Error(`subtree ${node.level}/${node.index} was neither cached nor read`);
        return hash;
      }),
    ),
  );
}

// --- generation --------------------------------------------------------------

/** PATH(index, D[treeSize]) from in-memory leaf hashes (RFC 9162 §2.1.3.1). */
export function inclusionProof(index: number, treeSize: number, leaves: LeafSource): Buffer[] {
  return resolveFromLeaves(inclusionPlan(index, treeSize), leaves);
}

/** PROOF(oldSize, D[newSize]) from in-memory leaf hashes (RFC 9162 §2.1.4.1). */
export function consistencyProof(oldSize: number, newSize: number, leaves: LeafSource): Buffer[] {
  return resolveFromLeaves(consistencyPlan(oldSize, newSize), leaves);
}

export function fetchInclusionProof(index: number, treeSize: number, reader: HashReader): Promise<Buffer[]> {
  return resolveFromReader(inclusionPlan(index, treeSize), reader);
}

export function fetchConsistencyProof(oldSize: number, newSize: number, reader: HashReader): Promise<Buffer[]> {
  return resolveFromReader(consistencyPlan(oldSize, newSize), reader);
}

/**
 * The compact tree of the first `treeSize` leaves, read from the store: each frontier
 * subtree's hash is a stored node or is recomputed from its leaves (batched like proofs).
 * This is how a writer resumes after a restart.
 */
export async function fetchCompactTree(treeSize: number, reader: HashReader): Promise<CompactTree> {
  assertCount('tree size', treeSize);
  if (treeSize === 0) return CompactTree.empty();
  const frontier = perfectSubtrees({ start: 0, end: treeSize }).map((node) => ({
    start: nodeStart(node),
    end: nodeStart(node) + 2 ** node.level,
  }));
  return CompactTree.fromFrontier(treeSize, await resolveFromReader(frontier, reader));
}

/** MTH(D[treeSize]) of any past size — e.g. to re-derive a checkpoint's root from the store. */
export async function fetchRootHash(treeSize: number, reader: HashReader): Promise<Buffer> {
  assertCount('tree size', treeSize);
  if (treeSize === 0) return Buffer.from(EMPTY_ROOT_HASH);
  const [root] = await resolveFromReader([{ start: 0, end: treeSize }], reader);
  if (root === undefined) throw new Error('resolving one range gave no hash');
  return root;
}

// --- verification --------------------------------------------------------------
// Transcribed step by step from RFC 9162 §2.1.3.2 and §2.1.4.2. Sizes can exceed 2^32, so
// "right-shift" is halving, not `>>`. Anything malformed verifies as false, never throws:
// proofs come from the outside.

const isOdd = (value: number): boolean => value % 2 === 1;
const half = (value: number): number => Math.floor(value / 2);
const isCount = (value: number): boolean => Number.isSafeInteger(value) && value >= 0;

/** RFC 9162 §2.1.3.2: does `proof` show `leafHash` at `index` in the tree with root `root`? */
export function verifyInclusion(
  leafHash: Uint8Array,
  index: number,
  treeSize: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!isCount(index) || !isCount(treeSize) || index >= treeSize || !isHash(leafHash)) return false;
  let fn = index;
  let sn = treeSize - 1;
  let r: Buffer = Buffer.from(leafHash);
  for (const p of proof) {
    if (!isHash(p) || sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && hashesEqual(r, root);
}

function isPowerOfTwo(value: number): boolean {
  return value > 0 && 2 ** Math.round(Math.log2(value)) === value;
}

/** RFC 9162 §2.1.4.2: is the tree (newSize, newRoot) an append-only extension of (oldSize, oldRoot)? */
export function verifyConsistency(
  oldSize: number,
  newSize: number,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!isCount(oldSize) || !isCount(newSize) || oldSize > newSize) return false;
  if (!isHash(oldRoot) || !isHash(newRoot) || !proof.every(isHash)) return false;
  if (oldSize === newSize) return proof.length === 0 && hashesEqual(oldRoot, newRoot);
  // Every tree extends the empty one, but only if the old root really is the empty root.
  if (oldSize === 0) return proof.length === 0 && hashesEqual(oldRoot, EMPTY_ROOT_HASH);
  if (proof.length === 0) return false;

  const path = isPowerOfTwo(oldSize) ? [oldRoot, ...proof] : [...proof];
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  const first = path[0];
  if (first === undefined) return false;
  let fr: Buffer = Buffer.from(first);
  let sr: Buffer = Buffer.from(first);
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return hashesEqual(fr, oldRoot) && hashesEqual(sr, newRoot) && sn === 0;
}
