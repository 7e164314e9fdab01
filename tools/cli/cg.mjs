#!/usr/bin/env node
// @ts-check
// `pnpm cg ...`: the operator's command line over the gateway's admin API (/v1/admin).
// Prints the API's JSON on stdout; a refusal prints its problem+json on stderr and exits 1.
//
// Env: GATEWAY_URL (default http://localhost:8080), OPERATOR_TOKEN (required; the same
// value the gateway was started with).
import { parseArgs } from 'node:util';

const USAGE = `usage: pnpm cg <command> [options]

  org create --name <name> [--slug <slug>]
  org list
  org get --org <orgId>
  app create --org <orgId> --name <name> --callback-url <url>... [--integration <id>...] [--scope <scope>...]
  app update --org <orgId> --app <applicationId> [--name <name>] [--callback-url <url>...]
             [--integration <id>...] [--scope <scope>...] [--status active|disabled]
             (lists given replace the stored ones)
  app list --org <orgId>
  app get --org <orgId> --app <applicationId>
  key issue --app <applicationId>          (prints the key once: store it now)
  key list --app <applicationId>
  key revoke --app <applicationId> --key <keyId>

env: GATEWAY_URL (default http://localhost:8080), OPERATOR_TOKEN (required)`;

const OPTIONS = /** @type {const} */ ({
  name: { type: 'string' },
  slug: { type: 'string' },
  org: { type: 'string' },
  app: { type: 'string' },
  key: { type: 'string' },
  'callback-url': { type: 'string', multiple: true },
  integration: { type: 'string', multiple: true },
  scope: { type: 'string', multiple: true },
  status: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
});

class UsageError extends Error {}

/** @param {Record<string, unknown>} values @param {string} name */
function required(values, name) {
  const value = values[name];
  if (typeof value !== 'string' || value === '') throw new UsageError(`--${name} is required`);
  return encodeURIComponent(value);
}

/**
 * The HTTP request a command stands for.
 * @param {string[]} positionals @param {Record<string, any>} v
 * @returns {{ method: string, path: string, body?: unknown }}
 */
export function requestFor(positionals, v) {
  const [noun, verb, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument: ${extra[0]}`);
  switch (`${noun} ${verb}`) {
    case 'org create':
      return {
        method: 'POST',
        path: '/v1/admin/organizations',
        body: { name: v.name ?? '', ...(v.slug ? { slug: v.slug } : {}) },
      };
    case 'org list':
      return { method: 'GET', path: '/v1/admin/organizations' };
    case 'org get':
      return { method: 'GET', path: `/v1/admin/organizations/${required(v, 'org')}` };
    case 'app create':
      return {
        method: 'POST',
        path: `/v1/admin/organizations/${required(v, 'org')}/applications`,
        body: {
          name: v.name ?? '',
          callbackUrls: v['callback-url'] ?? [],
          integrations: v.integration ?? [],
          scopes: v.scope ?? [],
        },
      };
    case 'app update': {
      /** @type {Record<string, unknown>} */
      const body = {};
      if (v.name !== undefined) body.name = v.name;
      if (v['callback-url']) body.callbackUrls = v['callback-url'];
      if (v.integration) body.integrations = v.integration;
      if (v.scope) body.scopes = v.scope;
      if (v.status !== undefined) body.status = v.status;
      if (Object.keys(body).length === 0)
        throw new UsageError(
          'app update: give at least one of --name, --callback-url, --integration, --scope, --status',
        );
      return {
        method: 'PATCH',
        path: `/v1/admin/organizations/${required(v, 'org')}/applications/${required(v, 'app')}`,
        body,
      };
    }
    case 'app list':
      return { method: 'GET', path: `/v1/admin/organizations/${required(v, 'org')}/applications` };
    case 'app get':
      return {
        method: 'GET',
        path: `/v1/admin/organizations/${required(v, 'org')}/applications/${required(v, 'app')}`,
      };
    case 'key issue':
      return { method: 'POST', path: `/v1/admin/applications/${required(v, 'app')}/api-keys` };
    case 'key list':
      return { method: 'GET', path: `/v1/admin/applications/${required(v, 'app')}/api-keys` };
    case 'key revoke':
      return { method: 'DELETE', path: `/v1/admin/applications/${required(v, 'app')}/api-keys/${required(v, 'key')}` };
    default:
      throw new UsageError(noun ? `unknown command: ${positionals.join(' ')}` : 'no command given');
  }
}

async function main() {
  let parsed;
  try {
    parsed = parseArgs({ args: process.argv.slice(2), options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    console.error(`${/** @type {Error} */ (error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.values.help) {
    console.log(USAGE);
    return 0;
  }
  let request;
  try {
    request = requestFor(parsed.positionals, parsed.values);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`${error.message}\n\n${USAGE}`);
    return 2;
  }
  const token = process.env.OPERATOR_TOKEN;
  if (!token) {
    console.error('OPERATOR_TOKEN is not set: export the operator token the gateway was started with.');
    return 2;
  }
  const base = (process.env.GATEWAY_URL || 'http://localhost:8080').replace(/\/+$/, '');
  let res;
  try {
    res = await fetch(`${base}${request.path}`, {
      method: request.method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(request.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: request.body === undefined ? undefined : JSON.stringify(request.body),
    });
  } catch (error) {
    console.error(
      `cannot reach the gateway at ${base} (${/** @type {Error} */ (error).cause ?? error}); is it running? set GATEWAY_URL`,
    );
    return 1;
  }
  const text = await res.text();
  let body;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { status: res.status, body: text };
  }
  if (!res.ok) {
    console.error(JSON.stringify(body, null, 2));
    return 1;
  }
  console.log(JSON.stringify(body, null, 2));
  return 0;
}

if (import.meta.url === new URL(process.argv[1] ?? '', 'file:').href) {
  process.exitCode = await main();
}
