/**
 * @context-gateway/record-catalog — the source-agnostic record types of Personal Servers
 * (versioned, with docs), the mapping from each integration's data scopes to them, and
 * write-time validation. Writers (sync-worker) produce these shapes; personal-server
 * validates them; apps read them; docs/record-types.md is generated from here.
 */
export * from './record-docs.js';
export * from './record-migrations.js';
export * from './record-types.js';
export * from './scopes.js';
export * from './validate-record.js';
