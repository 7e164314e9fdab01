#!/usr/bin/env node
// @ts-check
// `node scripts/db-roles.mjs`: after `pnpm db:migrate`, creates (idempotently) the database
// roles of issue #12 item 3 on the database DATABASE_URL names (as a superuser):
//   <prefix>owner        NOLOGIN, owns every service schema and table (migrations)
//   <prefix>audit_owner  NOLOGIN, owns the audit schema; no service can assume it
//   <prefix><schema>     LOGIN, one per service with tables: USAGE + DML on its own schema
//                        only (audit: SELECT, INSERT, UPDATE(revoked_at) on auditors)
// Passwords: DB_ROLE_PASSWORD_<SCHEMA> (deploy, from Secrets) or generated once and kept in
// .data/db-roles.json (mode 0600). They are never printed.
// Env: DATABASE_URL, DB_ROLE_PREFIX (default `cg_`).
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  DEFAULT_DATABASE_URL,
  importDatabaseLib,
  redactUrl,
  ROOT_DIR,
  servicesWithMigrations,
} from './db/services.mjs';

const PASSWORDS_FILE = join(ROOT_DIR, '.data', 'db-roles.json');

/** @returns {Record<string, string>} */
function loadPasswords() {
  if (!existsSync(PASSWORDS_FILE)) return {};
  return JSON.parse(readFileSync(PASSWORDS_FILE, 'utf8'));
}

/** @param {Record<string, string>} passwords */
function savePasswords(passwords) {
  mkdirSync(join(ROOT_DIR, '.data'), { recursive: true });
  writeFileSync(PASSWORDS_FILE, `${JSON.stringify(passwords, null, 2)}\n`, { mode: 0o600 });
  chmodSync(PASSWORDS_FILE, 0o600);
}

async function main() {
  const url = process.env.DATABASE_URL || DEFAULT_DATABASE_URL;
  const prefix = process.env.DB_ROLE_PREFIX ?? 'cg_';
  const { createPool, provisionServiceRoles, serviceRoleName } = await importDatabaseLib('index.js');
  const admin = createPool({ url, schema: 'public', applicationName: 'db-roles', max: 1 });
  try {
    const stored = loadPasswords();
    const services = [];
    for (const service of servicesWithMigrations()) {
      const tables = await admin.query(
        `SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = $1 AND tablename <> '_prisma_migrations'`,
        [service.schema],
      );
      if (tables.rows[0].n === 0) continue; // no tables (the gateway): no role
      const role = serviceRoleName(prefix, service.schema);
      const password =
        process.env[`DB_ROLE_PASSWORD_${service.schema.toUpperCase()}`] ||
        stored[role] ||
        randomBytes(24).toString('base64url');
      stored[role] = password;
      const audit = service.name === 'audit';
      services.push({
        schema: service.schema,
        role,
        password,
        access: audit ? 'append-only' : 'dml',
        ...(audit ? { columnUpdates: { auditors: ['revoked_at'] } } : {}),
      });
    }
    await provisionServiceRoles(admin, {
      ownerRole: serviceRoleName(prefix, 'owner'),
      appendOnlyOwnerRole: serviceRoleName(prefix, 'audit_owner'),
      services,
    });
    savePasswords(stored);
    for (const service of services) console.log(`${service.schema}: login role ${service.role}`);
    console.log(`roles ready on ${redactUrl(url)}; passwords in ${PASSWORDS_FILE} (0600)`);
  } finally {
    await admin.end();
  }
  return 0;
}

try {
  process.exitCode = await main();
} catch (error) {
  const { code, message } = /** @type {{ code?: string, message: string }} */ (error);
  console.error(`db-roles failed${code ? ` [${code}]` : ''}: ${message}`);
  process.exitCode = 1;
}
