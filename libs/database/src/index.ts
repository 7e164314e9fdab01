export * from './copy-binary.js';
export * from './ensure-database.js';
export * from './lock-conflict.js';
export * from './migrations/apply-migrations.js';
export * from './pool.js';
export * from './prisma-adapter.js';
export * from './roles/service-roles.js';
export * from './schema-name.js';
