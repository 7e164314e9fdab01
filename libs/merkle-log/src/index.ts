export * from './canonical-json.js';
export * from './checkpoint.js';
export * from './compact-tree.js';
export * from './hash.js';
export * from './log-entry.js';
export * from './proofs.js';
export * from './signed-note.js';
export { type NodeId } from './tree-math.js';
export * from './verify-log.js';
