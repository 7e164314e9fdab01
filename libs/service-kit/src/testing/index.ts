export * from './rpc-fuzz-suite.js';
export * from './service-harness.js';
