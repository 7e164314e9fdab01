// Micro-benchmark of @context-gateway/merkle-log (the built dist): run `pnpm build` first, then
// `node bench/merkle.bench.mjs [treeSize]`. Single-threaded; figures are per core.
import { createHash } from 'node:crypto';

import {
  CompactTree,
  fetchConsistencyProof,
  fetchInclusionProof,
  fetchRootHash,
  leafHash,
  LogWriter,
  verifyConsistency,
  verifyInclusion,
  verifyLog,
} from '../dist/index.js';

const SIZE = Number(process.argv[2] ?? 1_000_000);

function rate(label, count, run) {
  const start = process.hrtime.bigint();
  const result = run();
  const finish = (value) => {
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    console.log(
      `${label.padEnd(58)} ${Math.round(count / seconds)
        .toLocaleString('en-US')
        .padStart(12)} /s`,
    );
    return value;
  };
  return result instanceof Promise ? result.then(finish) : finish(result);
}

const leaves = Array.from({ length: SIZE }, (_, i) => createHash('sha256').update(`leaf ${i}`).digest());

// Perfect-subtree hashes kept per level, as the audit service would keep them in Postgres.
const levels = [leaves];
const tree = CompactTree.empty();
rate(`CompactTree.append (n = ${SIZE.toLocaleString('en-US')})`, SIZE, () => {
  for (const leaf of leaves) tree.append(leaf, (node, hash) => ((levels[node.level] ??= [])[node.index] = hash));
});
const root = tree.root();

const writer = LogWriter.empty();
const EVENTS = 200_000;
rate('LogWriter.append (canonical JSON + leaf hash + tree)', EVENTS, () => {
  for (let i = 0; i < EVENTS; i += 1) {
    writer.append(`evt-${i}`, {
      action: 'data.read',
      subject: 'user-42',
      resource: 'gmail.messages',
      at: 1732521600000 + i,
    });
  }
});

const reader = {
  async leafHashes(start, end) {
    return leaves.slice(start, end);
  },
  async nodeHashes(nodes) {
    return nodes.map(({ level, index }) => levels[level]?.[index]);
  },
};

const PROOFS = 50_000;
const indexes = Array.from({ length: PROOFS }, (_, i) => (i * 7919) % SIZE);
const inclusion = [];
await rate('inclusion proof generation (cached subtree hashes)', PROOFS, async () => {
  for (const index of indexes) inclusion.push(await fetchInclusionProof(index, SIZE, reader));
});
rate('inclusion proof verification', PROOFS, () => {
  indexes.forEach((index, i) => {
    if (!verifyInclusion(leaves[index], index, SIZE, inclusion[i], root)) throw new Error(`proof ${index} failed`);
  });
});

const oldSizes = Array.from({ length: PROOFS }, (_, i) => 1 + ((i * 104729) % (SIZE - 1)));
const consistency = [];
await rate('consistency proof generation (cached subtree hashes)', PROOFS, async () => {
  for (const size of oldSizes) consistency.push(await fetchConsistencyProof(size, SIZE, reader));
});
// Old roots come from the same cached hashes (the service would read them from its checkpoints).
const rootsBySize = new Map();
for (const size of oldSizes.slice(0, 2000)) rootsBySize.set(size, await fetchRootHash(size, reader));
rate('consistency proof verification', 2000, () => {
  oldSizes.slice(0, 2000).forEach((size, i) => {
    if (!verifyConsistency(size, SIZE, rootsBySize.get(size), root, consistency[i]))
      throw new Error(`proof ${size} failed`);
  });
});

const stored = [];
const fresh = LogWriter.empty();
for (let i = 0; i < EVENTS; i += 1) {
  const entry = fresh.append(`evt-${i}`, { action: 'data.read', n: i });
  stored.push({
    index: entry.index,
    eventId: entry.eventId,
    canonicalBytes: entry.canonicalBytes,
    storedLeafHash: entry.leafHash,
  });
}
await rate('verifyLog (decode, re-hash, chain, tree)', EVENTS, async () => {
  const result = await verifyLog(stored, []);
  if (!result.ok) throw new Error('log did not verify');
});
console.log(`(leafHash sanity: ${leafHash(Buffer.alloc(0)).toString('hex').slice(0, 8)}…, node ${process.version})`);
