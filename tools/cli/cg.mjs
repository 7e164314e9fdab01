#!/usr/bin/env node
// @ts-check
// `pnpm cg ...`: the operator's command line over the gateway's admin API (/v1/admin),
// through the SDK's admin client (@context-gateway/node, sdk/node).
// Prints the API's JSON on stdout; a refusal prints its problem+json on stderr and exits 1.
//
// Env: GATEWAY_URL (default http://localhost:8080), OPERATOR_TOKEN (required; the same
// value the gateway was started with).
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';

/** @typedef {typeof import('../../sdk/node/src/index.js')} Sdk */
/** @typedef {import('../../sdk/node/src/index.js').AdminClient} AdminClient */
/** @typedef {import('../../sdk/node/src/index.js').Application} Application */

// The CLI is a plain script, not a workspace package with dependencies, so it loads the
// SDK's build by path (`pnpm build` builds ./sdk/**). Types come from the sources, so
// checking this file does not need a build.
const SDK_URL = new URL('../../sdk/node/dist/index.js', import.meta.url);

const USAGE = `usage: pnpm cg <command> [options]

  org create --name <name> [--slug <slug>]
  org list
  org get --org <orgId>
  app create --org <orgId> --name <name> --callback-url <url>... [--integration <id>...] [--scope <scope>...]
  app create --org <orgId> --name <name> --metadata-url <https url> [--integration <id>...] [--scope <scope>...]
             (allows an MCP client by its Client ID Metadata Document URL; many orgs may allow one URL)
  app update --org <orgId> --app <applicationId> [--name <name>] [--callback-url <url>...]
             [--integration <id>...] [--scope <scope>...] [--status active|disabled]
             (lists given replace the stored ones)
  app list --org <orgId>
  app get --org <orgId> --app <applicationId>
  app oauth-client --org <orgId> --app <applicationId> --auth client_secret_basic|private_key_jwt|none
             [--rotate-secret] [--jwks-uri <https url>] [--idp-client-id <its client id at the org's IdP>]
             (how the app authenticates to the OAuth server; a rotated secret prints once)
  app oauth-grants --org <orgId> --app <applicationId>
             (the people the app holds OAuth tokens for)
  app revoke-oauth-tokens --org <orgId> --app <applicationId>
             (every OAuth token of the app stops working on the next request)
  registration-token issue --org <orgId> [--expires-in-seconds <n>] [--multi-use]
             (an initial access token for dynamic client registration, RFC 7591: prints once;
             single use and one day by default; needs OAUTH_DYNAMIC_REGISTRATION=true)
  registration-token list --org <orgId>
  registration-token revoke --org <orgId> --token <tokenId>
  key issue --app <applicationId>          (prints the key once: store it now)
  key list --app <applicationId>
  key revoke --app <applicationId> --key <keyId>
  sso get --org <orgId>
  sso set --org <orgId> --issuer <https url> --client-id <id> [--email-domain <domain>...]
             [--claim <name>=<value>...] [--sso-required]
             (the org's own OpenID Connect IdP; the client secret is read from SSO_CLIENT_SECRET,
             required the first time, kept when unset; redirect URI at the IdP:
             <GATEWAY_URL>/v1/auth/sso/callback)
  sso remove --org <orgId>
  webhook set --org <orgId> --app <applicationId> --url <https url>
             (where the app's events are POSTed; the signing secret prints once, the first time)
  webhook get --org <orgId> --app <applicationId>
  webhook rotate-secret --org <orgId> --app <applicationId> [--overlap-seconds <n>]
             (the new secret prints once; the old one keeps signing for the overlap, default 24 h)
  webhook remove --org <orgId> --app <applicationId>
  integrations get --org <orgId>
  integrations set --org <orgId> --integration <id>...
             (the integrations the org allows; replaces the list; none until set)
  mcp-server set --org <orgId> --integration <id> --url <https url> [--resource-argument <tool>=<argument>...]
             [--auth connection|mcp_oauth|none] [--client-id <pre-registered client id>]
             (the org's remote MCP server for an integration: agents reach its tools at /mcp,
             called with each person's own connection to the integration; mcp_oauth: one made
             with the server's own authorization server; a pre-registered client's secret is
             read from MCP_OAUTH_CLIENT_SECRET, never from the command line)
  mcp-server list --org <orgId>
  mcp-server remove --org <orgId> --integration <id>

env: GATEWAY_URL (default http://localhost:8080), OPERATOR_TOKEN (required)`;

const OPTIONS = /** @type {const} */ ({
  name: { type: 'string' },
  slug: { type: 'string' },
  org: { type: 'string' },
  app: { type: 'string' },
  key: { type: 'string' },
  'callback-url': { type: 'string', multiple: true },
  'metadata-url': { type: 'string' },
  integration: { type: 'string', multiple: true },
  scope: { type: 'string', multiple: true },
  status: { type: 'string' },
  auth: { type: 'string' },
  'rotate-secret': { type: 'boolean' },
  'jwks-uri': { type: 'string' },
  'idp-client-id': { type: 'string' },
  issuer: { type: 'string' },
  'client-id': { type: 'string' },
  'email-domain': { type: 'string', multiple: true },
  claim: { type: 'string', multiple: true },
  'sso-required': { type: 'boolean' },
  url: { type: 'string' },
  'overlap-seconds': { type: 'string' },
  'resource-argument': { type: 'string', multiple: true },
  'expires-in-seconds': { type: 'string' },
  'multi-use': { type: 'boolean' },
  token: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
});

class UsageError extends Error {}

/** @param {Record<string, unknown>} values @param {string} name */
function required(values, name) {
  const value = values[name];
  if (typeof value !== 'string' || value === '') throw new UsageError(`--${name} is required`);
  // The SDK encodes path segments itself.
  return value;
}

/**
 * A line for stderr when the app declares integrations its org does not allow: the org
 * layer of policy allows none until the operator lists them (docs/policy.md), so every
 * records query for them would be policy_denied. Best effort: the change itself succeeded.
 * @param {AdminClient} admin @param {Application} app
 * @returns {Promise<string | undefined>}
 */
async function policyNote(admin, app) {
  if (app.integrations.length === 0) return undefined;
  let allowed;
  try {
    allowed = (await admin.integrations.get(app.orgId)).integrations;
  } catch {
    return undefined;
  }
  const missing = app.integrations.filter((id) => !allowed.includes(id));
  if (missing.length === 0) return undefined;
  const wanted = [...allowed, ...missing].map((id) => ` --integration ${id}`).join('');
  return (
    `note: organization ${app.orgId} does not allow ${missing.join(', ')}: this app's queries for ` +
    `${missing.length === 1 ? 'it' : 'them'} would be ` +
    `policy_denied. Allow it with: pnpm cg integrations set --org ${app.orgId}${wanted}`
  );
}

/**
 * The SDK call a command stands for. Arguments are checked here, before anything is sent.
 * @param {string[]} positionals @param {Record<string, any>} v
 * @returns {(admin: AdminClient, note: (line: string) => void) => Promise<unknown>}
 */
function commandFor(positionals, v) {
  const [noun, verb, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument: ${extra[0]}`);
  switch (`${noun} ${verb}`) {
    case 'org create': {
      const input = { name: v.name ?? '', ...(v.slug ? { slug: v.slug } : {}) };
      return (admin) => admin.organizations.create(input);
    }
    case 'org list':
      return (admin) => admin.organizations.list();
    case 'org get': {
      const org = required(v, 'org');
      return (admin) => admin.organizations.get(org);
    }
    case 'app create': {
      const org = required(v, 'org');
      const input = {
        name: v.name ?? '',
        callbackUrls: v['callback-url'] ?? [],
        integrations: v.integration ?? [],
        scopes: v.scope ?? [],
        ...(v['metadata-url'] ? { clientMetadataUrl: v['metadata-url'] } : {}),
      };
      return async (admin, note) => {
        const app = await admin.applications.create(org, input);
        const line = await policyNote(admin, app);
        if (line) note(line);
        return app;
      };
    }
    case 'app update': {
      /** @type {Record<string, any>} */
      const change = {};
      if (v.name !== undefined) change.name = v.name;
      if (v['callback-url']) change.callbackUrls = v['callback-url'];
      if (v.integration) change.integrations = v.integration;
      if (v.scope) change.scopes = v.scope;
      if (v.status !== undefined) change.status = v.status;
      if (Object.keys(change).length === 0)
        throw new UsageError(
          'app update: give at least one of --name, --callback-url, --integration, --scope, --status',
        );
      const org = required(v, 'org');
      const app = required(v, 'app');
      return async (admin, note) => {
        const updated = await admin.applications.update(org, app, change);
        const line = await policyNote(admin, updated);
        if (line) note(line);
        return updated;
      };
    }
    case 'app list': {
      const org = required(v, 'org');
      return (admin) => admin.applications.list(org);
    }
    case 'app get': {
      const org = required(v, 'org');
      const app = required(v, 'app');
      return (admin) => admin.applications.get(org, app);
    }
    case 'app oauth-client': {
      const org = required(v, 'org');
      const app = required(v, 'app');
      const auth = required(v, 'auth');
      if (!['client_secret_basic', 'private_key_jwt', 'none'].includes(auth))
        throw new UsageError('--auth is client_secret_basic, private_key_jwt or none');
      const input = /** @type {import('../../sdk/node/src/index.js').OAuthClientInput} */ ({
        tokenEndpointAuthMethod: auth,
        rotateSecret: v['rotate-secret'] === true,
        ...(typeof v['jwks-uri'] === 'string' ? { jwksUri: v['jwks-uri'] } : {}),
        ...(typeof v['idp-client-id'] === 'string' ? { idpClientId: v['idp-client-id'] } : {}),
      });
      return (admin) => admin.applications.configureOAuthClient(org, app, input);
    }
    case 'app oauth-grants': {
      const org = required(v, 'org');
      const app = required(v, 'app');
      return (admin) => admin.applications.listOAuthGrants(org, app);
    }
    case 'app revoke-oauth-tokens': {
      const org = required(v, 'org');
      const app = required(v, 'app');
      return (admin) => admin.applications.revokeOAuthTokens(org, app);
    }
    case 'registration-token issue': {
      const org = required(v, 'org');
      const seconds = v['expires-in-seconds'];
      if (seconds !== undefined && !/^\d+$/.test(seconds))
        throw new UsageError('--expires-in-seconds is a whole number of seconds');
      const input = {
        ...(seconds === undefined ? {} : { expiresInSeconds: Number(seconds) }),
        singleUse: v['multi-use'] !== true,
      };
      return (admin) => admin.registrationTokens.issue(org, input);
    }
    case 'registration-token list': {
      const org = required(v, 'org');
      return (admin) => admin.registrationTokens.list(org);
    }
    case 'registration-token revoke': {
      const org = required(v, 'org');
      const token = required(v, 'token');
      return (admin) => admin.registrationTokens.revoke(org, token);
    }
    case 'key issue': {
      const app = required(v, 'app');
      return (admin) => admin.apiKeys.issue(app);
    }
    case 'key list': {
      const app = required(v, 'app');
      return (admin) => admin.apiKeys.list(app);
    }
    case 'key revoke': {
      const app = required(v, 'app');
      const key = required(v, 'key');
      return (admin) => admin.apiKeys.revoke(app, key);
    }
    case 'integrations get': {
      const org = required(v, 'org');
      return (admin) => admin.integrations.get(org);
    }
    case 'sso get': {
      const org = required(v, 'org');
      return (admin) => admin.sso.get(org);
    }
    case 'sso set': {
      const org = required(v, 'org');
      /** @type {Record<string, string>} */
      const requiredClaims = {};
      for (const pair of v.claim ?? []) {
        const eq = pair.indexOf('=');
        if (eq <= 0) throw new UsageError(`--claim ${pair}: write it as <name>=<value>`);
        requiredClaims[pair.slice(0, eq)] = pair.slice(eq + 1);
      }
      // Never a command-line argument: it would stay in shell history and show in `ps`.
      const secret = process.env.SSO_CLIENT_SECRET;
      const input = {
        issuer: required(v, 'issuer'),
        clientId: required(v, 'client-id'),
        ...(secret ? { clientSecret: secret } : {}),
        emailDomains: v['email-domain'] ?? [],
        requiredClaims,
        ssoRequired: v['sso-required'] === true,
      };
      return (admin) => admin.sso.set(org, input);
    }
    case 'sso remove': {
      const org = required(v, 'org');
      return async (admin) => {
        await admin.sso.remove(org);
        return { removed: true };
      };
    }
    case 'webhook set': {
      const org = required(v, 'org');
      const app = required(v, 'app');
      const url = required(v, 'url');
      return (admin) => admin.webhooks.set(org, app, url);
    }
    case 'webhook get': {
      const org = required(v, 'org');
      const app = required(v, 'app');
      return (admin) => admin.webhooks.get(org, app);
    }
    case 'webhook rotate-secret': {
      const org = required(v, 'org');
      const app = required(v, 'app');
      const raw = v['overlap-seconds'];
      const overlap = raw === undefined ? undefined : Number(raw);
      if (overlap !== undefined && !Number.isInteger(overlap))
        throw new UsageError('--overlap-seconds must be a whole number of seconds');
      return (admin) => admin.webhooks.rotateSecret(org, app, overlap);
    }
    case 'webhook remove': {
      const org = required(v, 'org');
      const app = required(v, 'app');
      return (admin) => admin.webhooks.remove(org, app);
    }
    case 'integrations set': {
      const org = required(v, 'org');
      /** @type {string[]} */
      const integrations = v.integration ?? [];
      // An empty list would switch every integration off for the org: never by omission.
      if (integrations.length === 0) throw new UsageError('integrations set: give at least one --integration');
      return (admin) => admin.integrations.set(org, integrations);
    }
    case 'mcp-server set': {
      const org = required(v, 'org');
      const url = required(v, 'url');
      const [integration, ...more] = v.integration ?? [];
      if (!integration || more.length > 0) throw new UsageError('mcp-server set: give exactly one --integration');
      /** @type {Record<string, string>} */
      const resourceArguments = {};
      for (const pair of v['resource-argument'] ?? []) {
        const eq = pair.indexOf('=');
        if (eq <= 0 || eq === pair.length - 1)
          throw new UsageError(`--resource-argument ${pair}: write it as <tool>=<argument>`);
        resourceArguments[pair.slice(0, eq)] = pair.slice(eq + 1);
      }
      const auth = v.auth ?? 'connection';
      if (!['connection', 'mcp_oauth', 'none'].includes(auth))
        throw new UsageError('--auth is connection, mcp_oauth or none');
      const clientSecret = process.env.MCP_OAUTH_CLIENT_SECRET;
      const oauthClient = v['client-id']
        ? { clientId: v['client-id'], ...(clientSecret ? { clientSecret } : {}) }
        : undefined;
      return (admin) =>
        admin.mcpServers.put(org, integration, {
          url,
          resourceArguments,
          auth: /** @type {'connection' | 'mcp_oauth' | 'none'} */ (auth),
          ...(oauthClient ? { oauthClient } : {}),
        });
    }
    case 'mcp-server list': {
      const org = required(v, 'org');
      return (admin) => admin.mcpServers.list(org);
    }
    case 'mcp-server remove': {
      const org = required(v, 'org');
      const [integration, ...more] = v.integration ?? [];
      if (!integration || more.length > 0) throw new UsageError('mcp-server remove: give exactly one --integration');
      return (admin) => admin.mcpServers.remove(org, integration);
    }
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
  let command;
  try {
    command = commandFor(parsed.positionals, parsed.values);
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
  if (!existsSync(SDK_URL)) {
    console.error('The SDK is not built (sdk/node/dist is missing): run `pnpm build` first.');
    return 2;
  }
  /** @type {Sdk} */
  const sdk = await import(SDK_URL.href);
  const base = (process.env.GATEWAY_URL || 'http://localhost:8080').replace(/\/+$/, '');
  const admin = sdk.adminClient({ baseUrl: base, operatorToken: token, userAgent: 'pnpm-cg' });
  try {
    const result = await command(admin, (line) => console.error(line));
    console.log(JSON.stringify(result ?? null, null, 2));
    return 0;
  } catch (error) {
    if (error instanceof sdk.GatewayError) {
      // The problem document as the gateway sent it; what the SDK made of a body that was none.
      const problem = error.problem ?? { status: error.status, code: error.code, detail: error.detail };
      console.error(JSON.stringify(problem, null, 2));
      return 1;
    }
    if (error instanceof sdk.GatewayNetworkError) {
      // fetch's "fetch failed" wraps what went wrong (ECONNREFUSED, ENOTFOUND): say that.
      const failure = /** @type {{ cause?: unknown } | undefined} */ (error.cause);
      console.error(
        `cannot reach the gateway at ${base} (${failure?.cause ?? failure ?? error}); is it running? set GATEWAY_URL`,
      );
      return 1;
    }
    throw error;
  }
}

if (import.meta.url === new URL(process.argv[1] ?? '', 'file:').href) {
  process.exitCode = await main();
}
