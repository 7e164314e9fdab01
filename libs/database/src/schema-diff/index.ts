export { diffDatabaseToSchema, diffMigrationsToSchema, type DiffOptions } from './schema-diff.js';
