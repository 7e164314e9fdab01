export * from './config/env.js';
export * from './health/readiness.service.js';
export * from './http/problem.filter.js';
export * from './http/problem.js';
export * from './metrics/metrics.js';
export * from './runtime/bootstrap.js';
export * from './runtime/runtime.module.js';
export * from './runtime/tokens.js';
