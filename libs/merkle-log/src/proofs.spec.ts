import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';

import { CompactTree, rootHash } from './compact-tree.js';
import { EMPTY_ROOT_HASH, leafHash, nodeHash } from './hash.js';
import {
  consistencyPlan,
  consistencyProof,
  fetchCompactTree,
  fetchConsistencyProof,
  fetchInclusionProof,
  fetchRootHash,
  type HashReader,
  inclusionPlan,
  inclusionProof,
  verifyConsistency,
  verifyInclusion,
} from './proofs.js';
import { CONSISTENCY_PROOFS, INCLUSION_PROOFS, LEAF_INPUTS, ROOT_HASHES } from './rfc6962-vectors.fixture.js';
import { type NodeId, nodeStart, splitPoint } from './tree-math.js';

const hex = (hashes: readonly Uint8Array[]): string[] => hashes.map((h) => Buffer.from(h).toString('hex'));
const vectorLeaves = LEAF_INPUTS.map(leafHash);
const leavesOf = (n: number): Buffer[] => Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`leaf ${i}`)));
const MAX = 64;
const leaves = leavesOf(MAX);
const roots = Array.from({ length: MAX + 1 }, (_, n) => rootHash(leaves.slice(0, n)));

/** RFC 9162 §2.1.3.1 PATH(m, D[n]), recursive, as written — the oracle for generation. */
function referencePath(m: number, d: readonly Buffer[]): Buffer[] {
  if (d.length <= 1) return [];
  const k = splitPoint(d.length);
  return m < k
    ? [...referencePath(m, d.slice(0, k)), rootHash(d.slice(k))]
    : [...referencePath(m - k, d.slice(k)), rootHash(d.slice(0, k))];
}

/** RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b), recursive, as written. */
function referenceSubproof(m: number, d: readonly Buffer[], b: boolean): Buffer[] {
  if (m === d.length) return b ? [] : [rootHash(d)];
  const k = splitPoint(d.length);
  return m <= k
    ? [...referenceSubproof(m, d.slice(0, k), b), rootHash(d.slice(k))]
    : [...referenceSubproof(m - k, d.slice(k), false), rootHash(d.slice(0, k))];
}

/** Which side each sibling of PATH(index, D[size]) is on: all a verifier learns from the size. */
const shape = (index: number, size: number): string =>
  inclusionPlan(index, size)
    .map((range) => (range.end <= index ? 'L' : 'R'))
    .join('');

/** Whether each element of PROOF(m, D[n]) lies in the old tree, the new part, or spans both. */
const consistencyShape = (m: number, n: number): string =>
  consistencyPlan(m, n)
    .map((range) => (range.end <= m ? 'old' : range.start >= m ? 'new' : 'both'))
    .join(',');

/** Every variant of a proof with one bit flipped, one element dropped or one added. */
function* corruptions(proof: readonly Buffer[]): Generator<Buffer[]> {
  for (let i = 0; i < proof.length; i += 1) {
    for (const bit of [0, 7 * 8 + 3, 255]) {
      const copy = proof.map((h) => Buffer.from(h));
      copy[i]![bit >> 3]! ^= 1 << (bit & 7);
      yield copy;
    }
    yield proof.filter((_, j) => j !== i);
  }
  yield [...proof, leaves[0]!];
}

describe('inclusion proofs', () => {
  it.each(INCLUSION_PROOFS)('PATH($index, D[$size]) equals the CT reference vector', ({ index, size, proof }) => {
    expect(hex(inclusionProof(index, size, vectorLeaves.slice(0, size)))).toEqual(hex(proof));
    expect(verifyInclusion(vectorLeaves[index]!, index, size, proof, ROOT_HASHES[size]!)).toBe(true);
  });

  it('matches the RFC definition and verifies for every (index, size) up to 64; any corruption or wrong index/size fails', () => {
    // Failures are collected rather than asserted one by one: ~60k checks, one readable diff.
    const failures: string[] = [];
    let shapeChecks = 0;
    for (let size = 1; size <= MAX; size += 1) {
      for (let index = 0; index < size; index += 1) {
        const at = `PATH(${index}, D[${size}])`;
        const proof = inclusionProof(index, size, leaves);
        const root = roots[size]!;
        const ok = (proofToCheck: readonly Buffer[], i = index, n = size, leaf = leaves[index]!) =>
          verifyInclusion(leaf, i, n, proofToCheck, root);
        if (hex(proof).join() !== hex(referencePath(index, leaves.slice(0, size))).join())
          failures.push(`${at} differs from RFC`);
        if (!ok(proof)) failures.push(`${at} does not verify`);
        for (const bad of corruptions(proof)) if (ok(bad)) failures.push(`${at} verifies when corrupted`);
        if (ok(proof, index + 1)) failures.push(`${at} verifies for index + 1`);
        if (index > 0 && ok(proof, index - 1)) failures.push(`${at} verifies for index - 1`);
        if (ok(proof, index, size, leaves[(index + 1) % MAX])) failures.push(`${at} verifies another leaf`);
        // The root binds the size only through the proof's shape (RFC 9162 checks the path's
        // left/right pattern against the size), so a wrong size must fail whenever it changes that shape.
        for (const wrongSize of [size - 1, size + 1]) {
          if (wrongSize <= index) continue;
          const passes = ok(proof, index, wrongSize);
          if (passes !== (shape(index, wrongSize) === shape(index, size))) failures.push(`${at} vs size ${wrongSize}`);
          if (!passes) shapeChecks += 1;
        }
      }
    }
    expect(failures).toEqual([]);
    expect(shapeChecks).toBeGreaterThan(400);
  });

  it('rejects nonsense arguments without throwing', () => {
    expect(verifyInclusion(leaves[0]!, 0, 0, [], EMPTY_ROOT_HASH)).toBe(false);
    expect(verifyInclusion(leaves[0]!, -1, 2, [leaves[1]!], roots[2]!)).toBe(false);
    expect(verifyInclusion(leaves[0]!, 0, 2, [Buffer.alloc(31)], roots[2]!)).toBe(false);
    expect(() => inclusionProof(3, 3, leaves)).toThrow('not in a tree of size 3');
  });
});

describe('consistency proofs', () => {
  it.each(CONSISTENCY_PROOFS)(
    'PROOF($oldSize, D[$newSize]) equals the CT reference vector',
    ({ oldSize, newSize, proof }) => {
      expect(hex(consistencyProof(oldSize, newSize, vectorLeaves))).toEqual(hex(proof));
      expect(verifyConsistency(oldSize, newSize, ROOT_HASHES[oldSize]!, ROOT_HASHES[newSize]!, proof)).toBe(true);
    },
  );

  it('matches the RFC definition and verifies for every 0 ≤ m ≤ n ≤ 64; any corruption or wrong size/root fails', () => {
    const failures: string[] = [];
    let shapeChecks = 0;
    for (let n = 0; n <= MAX; n += 1) {
      for (let m = 0; m <= n; m += 1) {
        const at = `PROOF(${m}, D[${n}])`;
        const proof = consistencyProof(m, n, leaves);
        const ok = (proofToCheck: readonly Buffer[], m2 = m, n2 = n, rootM = roots[m]!, rootN = roots[n]!) =>
          verifyConsistency(m2, n2, rootM, rootN, proofToCheck);
        const expected = m === 0 ? [] : referenceSubproof(m, leaves.slice(0, n), true);
        if (hex(proof).join() !== hex(expected).join()) failures.push(`${at} differs from RFC`);
        if (!ok(proof)) failures.push(`${at} does not verify`);
        for (const bad of corruptions(proof)) if (ok(bad)) failures.push(`${at} verifies when corrupted`);
        if (m === 0 || m === n) continue;
        if (ok(proof, m - 1)) failures.push(`${at} verifies for m - 1`);
        // As for inclusion, sizes are bound only through the proof's shape.
        for (const [wrongM, wrongN] of [
          [m, n + 1],
          [m, n - 1],
          [m + 1, n],
        ] as const) {
          if (wrongM > wrongN) continue;
          if (!ok(proof, wrongM, wrongN)) shapeChecks += 1;
          else if (consistencyShape(wrongM, wrongN) !== consistencyShape(m, n))
            failures.push(`${at} verifies as (${wrongM}, ${wrongN})`);
        }
        // A different old tree — a rewritten history — must not pass as a prefix.
        const forgedOld = rootHash([...leaves.slice(0, m - 1), leafHash(Buffer.from('forged'))]);
        if (ok(proof, m, n, forgedOld)) failures.push(`${at} accepts a rewritten old tree`);
        if (ok(proof, m, n, roots[m], roots[n - 1])) failures.push(`${at} accepts another new root`);
      }
    }
    expect(failures).toEqual([]);
    expect(shapeChecks).toBeGreaterThan(2000);
  });

  it('treats a shrinking tree as inconsistent', () => {
    expect(verifyConsistency(5, 4, roots[5]!, roots[4]!, [])).toBe(false);
    expect(() => consistencyProof(5, 4, leaves)).toThrow('exceeds');
  });

  it('holds for random sizes well past 64 (property)', () => {
    const many = leavesOf(3000);
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 3000 })
          .chain((n) => fc.tuple(fc.integer({ min: 0, max: n }), fc.constant(n), fc.integer({ min: 0, max: n - 1 }))),
        ([m, n, index]) => {
          const rootN = rootHash(many.slice(0, n));
          const rootM = rootHash(many.slice(0, m));
          const path = inclusionProof(index, n, many);
          const proof = consistencyProof(m, n, many);
          return (
            verifyInclusion(many[index]!, index, n, path, rootN) &&
            path.length <= Math.ceil(Math.log2(n)) &&
            verifyConsistency(m, n, rootM, rootN, proof) &&
            proof.length <= Math.ceil(Math.log2(n)) + 1
          );
        },
      ),
      { numRuns: 100 },
    );
  });
});

/** A store like the audit service's: leaf hashes by range, perfect-subtree hashes by id. */
function countingReader(all: readonly Buffer[], cacheLevelsFrom: number | undefined) {
  const cache = new Map<string, Buffer>();
  const tree = CompactTree.empty();
  all.forEach((leaf) => tree.append(leaf, (node, hash) => cache.set(`${node.level}/${node.index}`, hash)));
  const stats = { leafReads: 0, leavesRead: 0, nodeLookups: 0 };
  const reader: HashReader = {
    leafHashes(start, end) {
      stats.leafReads += 1;
      stats.leavesRead += end - start;
      return Promise.resolve(all.slice(start, end));
    },
  };
  if (cacheLevelsFrom !== undefined) {
    reader.nodeHashes = (nodes: readonly NodeId[]) => {
      stats.nodeLookups += nodes.length;
      return Promise.resolve(
        nodes.map((node) => (node.level >= cacheLevelsFrom ? cache.get(`${node.level}/${node.index}`) : undefined)),
      );
    };
  }
  return { reader, stats };
}

describe('proofs from a hash store', () => {
  const big = leavesOf(5000);

  it('answer from leaves alone when nothing is cached, one read per run of missing subtrees', async () => {
    const uncached = countingReader(big, undefined);
    await fetchConsistencyProof(1000, 5000, uncached.reader);
    expect(uncached.stats.leafReads).toBeLessThanOrEqual(2);
  });

  it('produce the same proofs and roots as in-memory generation, with or without a node cache', async () => {
    for (const cacheFrom of [undefined, 0, 4]) {
      const { reader } = countingReader(big, cacheFrom);
      for (const [index, size] of [
        [0, 1],
        [4999, 5000],
        [1234, 4097],
        [17, 33],
        [4096, 4097],
      ] as const) {
        expect(hex(await fetchInclusionProof(index, size, reader))).toEqual(hex(inclusionProof(index, size, big)));
      }
      for (const [m, n] of [
        [1, 5000],
        [4096, 5000],
        [777, 778],
        [0, 10],
        [100, 100],
        [2047, 4097],
      ] as const) {
        expect(hex(await fetchConsistencyProof(m, n, reader))).toEqual(hex(consistencyProof(m, n, big)));
      }
      expect((await fetchRootHash(4321, reader)).equals(rootHash(big.slice(0, 4321)))).toBe(true);
      expect((await fetchRootHash(0, reader)).equals(EMPTY_ROOT_HASH)).toBe(true);
      // A writer resuming: the frontier read back is the one that appending would have built.
      for (const size of [0, 1, 4096, 4321, 5000]) {
        const resumed = await fetchCompactTree(size, reader);
        const built = CompactTree.fromLeafHashes(big.slice(0, size));
        expect(resumed.size).toBe(size);
        expect(hex(resumed.frontierHashes())).toEqual(hex(built.frontierHashes()));
      }
    }
  });

  it('refuse a frontier that does not fit its size', () => {
    expect(() => CompactTree.fromFrontier(5, [big[0]!])).toThrow('a compact tree of size 5 has 2 frontier hashes');
    expect(() => CompactTree.fromFrontier(1, [Buffer.alloc(31)])).toThrow('32 bytes');
  });

  it('need only O(log n) lookups and a few leaves when subtree hashes are cached', async () => {
    const cached = countingReader(big, 4);
    await fetchInclusionProof(1234, 5000, cached.reader);
    // Below level 4 the siblings are recomputed from one aligned run of 16 leaves around the
    // proven one, plus the small tail of the right edge (5000 − 4096 = 512 + 256 + 128 + 8).
    expect(cached.stats.leafReads).toBe(2);
    expect(cached.stats.leavesRead).toBe(16 + 8);
    expect(cached.stats.nodeLookups).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(5000)));

    const uncached = countingReader(big, undefined);
    await fetchInclusionProof(1234, 5000, uncached.reader);
    expect(uncached.stats.leafReads).toBe(1);
    expect(uncached.stats.leavesRead).toBe(5000);
  });

  it('refuse a store that returns the wrong number of leaves', async () => {
    const reader: HashReader = { leafHashes: (start, end) => Promise.resolve(big.slice(start, end - 1)) };
    await expect(fetchInclusionProof(3, 8, reader)).rejects.toThrow('returned');
  });

  it('fold ranges exactly as the RFC recursion does (sanity of nodeStart)', () => {
    expect(nodeStart({ level: 40, index: 3 })).toBe(3 * 2 ** 40);
    expect(nodeHash(big[0]!, big[1]!).equals(rootHash(big.slice(0, 2)))).toBe(true);
  });
});
