import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';

import { CompactTree, rootHash } from './compact-tree.js';
import { EMPTY_ROOT_HASH, leafHash, nodeHash } from './hash.js';
import { COMPACT_TREES, LEAF_INPUTS, NODE_HASHES, ROOT_HASHES } from './rfc6962-vectors.fixture.js';
import type { NodeId } from './tree-math.js';

const hex = (hashes: readonly Uint8Array[]): string[] => hashes.map((h) => Buffer.from(h).toString('hex'));
const vectorLeaves = LEAF_INPUTS.map(leafHash);

/** Straight from the RFC 9162 §2.1.1 definition, recursive — the oracle for bigger trees. */
function referenceRoot(leaves: readonly Buffer[]): Buffer {
  if (leaves.length === 0) return EMPTY_ROOT_HASH;
  if (leaves.length === 1) return leaves[0]!;
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(referenceRoot(leaves.slice(0, k)), referenceRoot(leaves.slice(k)));
}

const randomLeaves = (n: number): Buffer[] => Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`entry ${i}`)));

describe('RFC 6962 hashing', () => {
  it('hashes leaves with the 0x00 prefix and nodes with 0x01, as the CT vectors expect', () => {
    expect(hex(vectorLeaves)).toEqual(hex(NODE_HASHES[0]!));
    expect(nodeHash(vectorLeaves[0]!, vectorLeaves[1]!).toString('hex')).toBe(NODE_HASHES[1]![0]!.toString('hex'));
  });

  it('gives the published root for every prefix size 0..8, including the empty tree', () => {
    for (let n = 0; n <= 8; n += 1) {
      expect(rootHash(vectorLeaves.slice(0, n)).toString('hex')).toBe(ROOT_HASHES[n]!.toString('hex'));
    }
    expect(rootHash([]).toString('hex')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});

describe('CompactTree', () => {
  it('keeps exactly the published frontier at every size', () => {
    const tree = CompactTree.empty();
    for (let n = 0; n <= 8; n += 1) {
      expect(hex(tree.frontierHashes())).toEqual(hex(COMPACT_TREES[n]!));
      if (n < 8) tree.append(vectorLeaves[n]!);
    }
  });

  it('reports every perfect subtree as it completes, with the published hash', () => {
    const completed: { node: NodeId; hash: string }[] = [];
    const tree = CompactTree.empty();
    vectorLeaves.forEach((leaf) =>
      tree.append(leaf, (node, hash) => completed.push({ node, hash: hash.toString('hex') })),
    );
    expect(completed).toHaveLength(4 + 2 + 1);
    for (const { node, hash } of completed) expect(hash).toBe(NODE_HASHES[node.level]![node.index]!.toString('hex'));
  });

  it('equals the batch root at every size up to 300 and survives serialize/deserialize', () => {
    const leaves = randomLeaves(300);
    const tree = CompactTree.empty();
    for (let n = 0; n <= leaves.length; n += 1) {
      const restored = CompactTree.deserialize(tree.serialize());
      expect(restored.size).toBe(n);
      expect(restored.root().equals(referenceRoot(leaves.slice(0, n)))).toBe(true);
      // A restored tree keeps growing into the same tree.
      if (n < leaves.length) {
        restored.append(leaves[n]!);
        tree.append(leaves[n]!);
        expect(restored.root().equals(tree.root())).toBe(true);
      }
    }
  });

  it('matches the recursive definition for random sizes (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2000 }), (n) => {
        const leaves = randomLeaves(n);
        return CompactTree.fromLeafHashes(leaves).root().equals(referenceRoot(leaves));
      }),
      { numRuns: 60 },
    );
  });

  it('holds O(log n) hashes: one per set bit of the size', () => {
    const tree = CompactTree.fromLeafHashes(randomLeaves(1023));
    expect(tree.frontierHashes()).toHaveLength(10);
    tree.append(leafHash(Buffer.from('x')));
    expect(tree.frontierHashes()).toHaveLength(1);
  });

  it('refuses a serialized frontier that was truncated, padded or has an unknown version', () => {
    const bytes = CompactTree.fromLeafHashes(randomLeaves(7)).serialize();
    expect(() => CompactTree.deserialize(bytes.subarray(0, bytes.length - 1))).toThrow('frontier hashes');
    expect(() => CompactTree.deserialize(Buffer.concat([bytes, Buffer.alloc(32)]))).toThrow('frontier hashes');
    const wrongVersion = Buffer.from(bytes);
    wrongVersion[0] = 2;
    expect(() => CompactTree.deserialize(wrongVersion)).toThrow('unknown version');
  });

  it('refuses leaf hashes that are not 32 bytes', () => {
    expect(() => CompactTree.empty().append(Buffer.alloc(31))).toThrow('32 bytes');
  });
});
