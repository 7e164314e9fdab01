export * from './row-counts.js';
export * from './test-schema.js';
