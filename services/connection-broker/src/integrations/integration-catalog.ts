import { AppError } from '@context-gateway/errors';
import { type IntegrationManifest, integrationManifests } from '@context-gateway/integration-catalog';

import { integrationEnvPrefix } from '../env.js';
import type { McpOAuthServer } from '../mcp-oauth/mcp-oauth-servers.repository.js';

export interface OAuthEndpoints {
  issuer?: string;
  authorizationUrl: string;
  tokenUrl: string;
  revocation?: { style: 'rfc7009' | 'github'; url: string };
  pkceRequired: boolean;
  scopeSeparator: string;
  clientId?: string;
  clientSecret?: string;
}

/** One integration with the environment's overrides applied: what the broker actually talks to. */
export interface Integration {
  key: string;
  displayName: string;
  authType: 'oauth2' | 'api_key' | 'file_export';
  /** Empty for a file_export integration (it has no API). */
  apiBaseUrl: string;
  oauth?: OAuthEndpoints;
  apiKey?: { label: string; pattern: RegExp };
  /** file_export: what the person uploads (e.g. "Netflix viewing activity", "ViewingActivity.csv"). */
  export?: { label: string; format: string };
  scopes: Record<string, { source: string[]; description: string }>;
  /**
   * Set for an org's remote MCP server connected through its own authorization server
   * (`auth: "mcp_oauth"`): not in the catalog, resolved per org (IntegrationResolver).
   */
  mcp?: McpOAuthServer;
}

/** Replaces scheme, host and port of `url` with those of `base`, keeping the path and query. */
function rebase(url: string, base: string | undefined): string {
  if (!base) return url;
  const from = new URL(url);
  const to = new URL(base);
  const basePath = to.pathname.replace(/\/$/, '');
  return `${to.origin}${basePath}${from.pathname}${from.search}`;
}

/** Applies INTEGRATION_<KEY>_* variables (env.ts documents them) to a catalog file. */
function applyOverrides(file: IntegrationManifest, env: Record<string, unknown>): Integration {
  const p = integrationEnvPrefix(file.key);
  const get = (name: string) => (typeof env[`${p}${name}`] === 'string' ? (env[`${p}${name}`] as string) : undefined);
  const base = get('BASE_URL');
  const integration: Integration = {
    key: file.key,
    displayName: file.displayName,
    authType: file.authType,
    apiBaseUrl: file.apiBaseUrl ? (get('API_BASE_URL') ?? rebase(file.apiBaseUrl, base)) : '',
    scopes: Object.fromEntries(
      Object.entries(file.scopes).map(([scope, { source, description }]) => [scope, { source, description }]),
    ),
  };
  if (file.export) integration.export = { ...file.export };
  if (file.oauth) {
    const revocationUrl =
      get('REVOCATION_URL') ?? (file.oauth.revocation ? rebase(file.oauth.revocation.url, base) : undefined);
    integration.oauth = {
      issuer: get('ISSUER') ?? (file.oauth.issuer ? (base ? new URL(base).origin : file.oauth.issuer) : undefined),
      authorizationUrl: get('AUTHORIZATION_URL') ?? rebase(file.oauth.authorizationUrl, base),
      tokenUrl: get('TOKEN_URL') ?? rebase(file.oauth.tokenUrl, base),
      revocation: revocationUrl ? { style: file.oauth.revocation?.style ?? 'rfc7009', url: revocationUrl } : undefined,
      pkceRequired: file.oauth.pkceRequired,
      scopeSeparator: file.oauth.scopeSeparator,
      clientId: get('CLIENT_ID'),
      clientSecret: get('CLIENT_SECRET'),
    };
  }
  if (file.apiKey) integration.apiKey = { label: file.apiKey.label, pattern: new RegExp(file.apiKey.pattern) };
  return integration;
}

/**
 * The integration catalog: data files (one per provider) plus environment overrides. It
 * answers which source scopes our scopes need and how to describe them to a person.
 */
export class IntegrationCatalog {
  readonly #byKey: Map<string, Integration>;

  constructor(integrations: Integration[]) {
    this.#byKey = new Map(integrations.map((i) => [i.key, i]));
  }

  /** The built-in manifests (libs/integration-catalog), with the environment's overrides applied. */
  static load(env: Record<string, unknown>): IntegrationCatalog {
    return new IntegrationCatalog(integrationManifests().map((m) => applyOverrides(m, env)));
  }

  keys(): string[] {
    return [...this.#byKey.keys()];
  }

  get(key: string): Integration {
    const integration = this.#byKey.get(key);
    if (!integration) throw new AppError('integration_not_allowed', `Unknown integration "${key}"`);
    return integration;
  }

  /** Checks that every scope belongs to the integration; returns them de-duplicated and sorted. */
  checkScopes(integration: Integration, scopes: readonly string[]): string[] {
    const unknown = scopes.filter((s) => !integration.scopes[s]);
    if (unknown.length > 0) {
      throw new AppError(
        'scope_not_allowed',
        `Unknown scope for ${integration.key}`,
        unknown.map((s) => ({ path: 'scopes', message: `unknown scope ${s}` })),
      );
    }
    return [...new Set(scopes)].sort();
  }

  /** The source's scopes our scopes need (de-duplicated, sorted). */
  sourceScopes(integration: Integration, scopes: readonly string[]): string[] {
    return [...new Set(scopes.flatMap((s) => integration.scopes[s]?.source ?? []))].sort();
  }

  describe(integration: Integration, scopes: readonly string[]): { scope: string; description: string }[] {
    return scopes.map((scope) => ({ scope, description: integration.scopes[scope]?.description ?? scope }));
  }
}
