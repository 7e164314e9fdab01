export * from './types.js';
export * from './compile-policies.js';
export * from './default-rules.js';
export { integrationOf, isCapability } from './capability.js';
