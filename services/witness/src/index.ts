export * from './checkpoint-store.js';
export * from './env.js';
export * from './http.js';
export * from './start.js';
export * from './witness.js';
