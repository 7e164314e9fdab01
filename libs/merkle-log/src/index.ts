export * from './hash.js';
export { type NodeId, type LeafRange, perfectSubtrees, splitPoint } from './tree-math.js';
export * from './compact-tree.js';
export * from './proofs.js';
export * from './canonical-json.js';
export * from './log-entry.js';
export * from './signed-note.js';
export * from './checkpoint.js';
export * from './verify-log.js';
