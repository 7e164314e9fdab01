// Read by the Prisma CLI only (generate here; migrate deploy/status where its native
// engine exists). Services connect through libs/database, not through this file.
import { defineConfig } from 'prisma/config';

// Prisma picks the Postgres schema from the URL's `schema` parameter; this service owns `audit`.
const url = new URL(process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/context_gateway');
url.searchParams.set('schema', process.env.DATABASE_SCHEMA || 'audit');

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: url.toString() },
});
