// @ts-check
// The database roles of issue #12 item 3, shared by `pnpm db:migrate`, `pnpm db:roles` and
// the stack (`pnpm start`, the e2e harness, the fault suite), so all of them create the
// same roles the same way (libs/database roles holds the SQL):
//   <prefix>owner        NOLOGIN, owns every service schema and table; migrations SET ROLE to it
//   <prefix>audit_owner  NOLOGIN, owns the audit schema; no service can assume it
//   <prefix><schema>     LOGIN, one per service: USAGE + DML on its own schema only
//                        (audit: SELECT, INSERT, UPDATE(revoked_at) on auditors)
// Passwords: DB_ROLE_PASSWORD_<SCHEMA> (deploy, from Secrets) or generated once and kept in
// DB_ROLES_FILE (default .data/db-roles.json, mode 0600). They are never printed.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

import { importDatabaseLib, ROOT_DIR, servicesWithMigrations } from './services.mjs';

/** @param {NodeJS.ProcessEnv} env */
export function rolePrefix(env = process.env) {
  return env.DB_ROLE_PREFIX ?? 'cg_';
}

/** @param {NodeJS.ProcessEnv} env */
function passwordsFile(env) {
  return resolve(ROOT_DIR, env.DB_ROLES_FILE ?? join('.data', 'db-roles.json'));
}

/** @param {string} file @returns {Record<string, string>} */
function loadPasswords(file) {
  if (!existsSync(file)) return {};
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** @param {string} file @param {Record<string, string>} passwords */
function savePasswords(file, passwords) {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(passwords, null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
}

/**
 * The owner roles for a prefix, and per service (by name) the role spec without a password.
 * @param {string} prefix
 */
export async function roleLayout(prefix) {
  const { serviceRoleName, serviceRoleSpec } = await importDatabaseLib('index.js');
  return {
    ownerRole: /** @type {string} */ (serviceRoleName(prefix, 'owner')),
    appendOnlyOwnerRole: /** @type {string} */ (serviceRoleName(prefix, 'audit_owner')),
    services: servicesWithMigrations().map((service) => ({
      ...service,
      /** @type {{ schema: string, role: string, access: 'dml' | 'append-only', memberOf?: string[] }} */
      spec: serviceRoleSpec(service.name, { prefix, password: '' }),
    })),
  };
}

/**
 * Creates (idempotently) every login role with its password and grants, after migrations.
 * Returns each service's login (by service name); the caller must never log the passwords.
 * @param {{ url: string, env?: NodeJS.ProcessEnv }} options
 * @returns {Promise<Record<string, { user: string, password: string }>>}
 */
export async function provisionRoles({ url, env = process.env }) {
  const { createPool, provisionServiceRoles } = await importDatabaseLib('index.js');
  const layout = await roleLayout(rolePrefix(env));
  const file = passwordsFile(env);
  const stored = loadPasswords(file);
  const services = layout.services.map(({ spec }) => {
    const password =
      env[`DB_ROLE_PASSWORD_${spec.schema.toUpperCase()}`] ||
      stored[spec.role] ||
      randomBytes(24).toString('base64url');
    stored[spec.role] = password;
    return { ...spec, password };
  });
  const admin = createPool({ url, schema: 'public', applicationName: 'db-roles', max: 1 });
  try {
    await provisionServiceRoles(admin, { ...layout, services });
  } finally {
    await admin.end();
  }
  savePasswords(file, stored);
  return Object.fromEntries(
    services.map((spec, i) => [layout.services[i]?.name, { user: spec.role, password: spec.password }]),
  );
}
