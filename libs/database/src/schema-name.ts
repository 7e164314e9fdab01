import { AppError } from '@context-gateway/errors';

// Postgres folds unquoted names to lower case and caps identifiers at 63 bytes; keeping
// schema names to this shape means they never need quoting by hand in psql either.
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** The Postgres schema a service owns: its name with `_` for `-` (`connection-broker` → `connection_broker`). */
export function serviceSchemaName(service: string): string {
  return assertSchemaName(service.replace(/-/g, '_'));
}

/** Returns the name if it is a safe schema name; throws `validation_failed` otherwise. */
export function assertSchemaName(schema: string): string {
  if (!SCHEMA_NAME.test(schema)) {
    throw new AppError(
      'validation_failed',
      `"${schema}" is not a valid schema name (lower-case letters, digits and _, at most 63)`,
    );
  }
  return schema;
}

/** Double-quotes an identifier for SQL text (identifiers cannot be bind parameters). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
