export { integrationOf, isCapability } from './capability.js';
export * from './compile-policies.js';
export * from './default-rules.js';
export * from './types.js';
