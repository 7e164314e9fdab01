export * from './copy-binary.js';
export * from './ensure-database.js';
export * from './migrations/apply-migrations.js';
export { migrationChecksum, type MigrationFile, readMigrationFiles } from './migrations/migration-files.js';
export { type MigrationRow, PRISMA_MIGRATION_LOCK_KEY } from './migrations/prisma-migrations-table.js';
export * from './pool.js';
export * from './prisma-adapter.js';
export * from './schema-name.js';
