export { diffMigrationsToSchema } from './schema-diff.js';
