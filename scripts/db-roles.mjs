#!/usr/bin/env node
// @ts-check
// `pnpm db:roles`: after `pnpm db:migrate`, creates (idempotently) one login role per service
// on the database DATABASE_URL names (as a superuser or CREATEROLE admin), with rights on its
// own schema only; scripts/db/roles.mjs says which roles and where the passwords come from.
// Env: DATABASE_URL, DB_ROLE_PREFIX (default `cg_`), DB_ROLES_FILE, DB_ROLE_PASSWORD_<SCHEMA>.
import { provisionRoles } from './db/roles.mjs';
import { DEFAULT_DATABASE_URL, redactUrl } from './db/services.mjs';

async function main() {
  const url = process.env.DATABASE_URL || DEFAULT_DATABASE_URL;
  const logins = await provisionRoles({ url });
  for (const [service, login] of Object.entries(logins)) console.log(`${service}: login role ${login.user}`);
  console.log(`roles ready on ${redactUrl(url)}; passwords kept where DB_ROLES_FILE says (never printed)`);
  return 0;
}

try {
  process.exitCode = await main();
} catch (error) {
  const { code, message } = /** @type {{ code?: string, message: string }} */ (error);
  console.error(`db-roles failed${code ? ` [${code}]` : ''}: ${message}`);
  process.exitCode = 1;
}
