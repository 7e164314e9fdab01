export * from './lock-waits.js';
export * from './row-counts.js';
export * from './test-schema.js';
