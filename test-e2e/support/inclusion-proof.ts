import { createHash } from 'node:crypto';

/** RFC 9162 §2.1.3.2, as an outside auditor would write it: no project code involved. */
export function verifyInclusion(leaf: Buffer, index: number, size: number, proof: Buffer[], root: Buffer): boolean {
  const node = (l: Buffer, r: Buffer) =>
    createHash('sha256')
      .update(Buffer.from([1]))
      .update(l)
      .update(r)
      .digest();
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = node(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else r = node(r, p);
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.equals(root);
}

/** An entry as the audit API returns it with its proof (GET /v1/audit/entries/{id}, /v1/me/audit/entries/{id}). */
export interface EntryWithProof {
  entry: { index: number; leafHash: string };
  canonicalEntry: string;
  checkpoint: { treeSize: number; rootHash: string } | null;
  inclusionProof: string[];
}

/** The leaf hash of the canonical bytes matches, and the proof leads to the checkpoint's root. */
export function entryIsInCheckpoint(answer: EntryWithProof): boolean {
  if (!answer.checkpoint) return false;
  const leaf = createHash('sha256')
    .update(Buffer.from([0]))
    .update(Buffer.from(answer.canonicalEntry, 'base64'))
    .digest();
  if (leaf.toString('hex') !== answer.entry.leafHash) return false;
  return verifyInclusion(
    leaf,
    answer.entry.index,
    answer.checkpoint.treeSize,
    answer.inclusionProof.map((h) => Buffer.from(h, 'base64')),
    Buffer.from(answer.checkpoint.rootHash, 'base64'),
  );
}
