import type { AdapterPayload, Configuration, KoaContextWithOIDC } from 'oidc-provider';
import { errors } from 'oidc-provider';

import { checkCallbackUrl } from '../applications/application-rules.js';
import { newClientSecret, TOKEN_ENDPOINT_AUTH_METHODS } from './oauth-clients.js';

/** The one registration policy every initial access token carries (RFC 7591 §3). */
const ORGANIZATION_POLICY = 'organization';

/** Our own metadata property naming the initial access token a client is being registered with. */
export const REGISTRATION_TOKEN_METADATA = 'registration_token_id';

/** What a registration may set: what an Application row holds. Anything else is ignored (RFC 7591 §2). */
const ACCEPTED = new Set([
  'client_name',
  'redirect_uris',
  'grant_types',
  'response_types',
  'token_endpoint_auth_method',
  'jwks',
]);
/** Refused outright rather than ignored: what would make this server fetch a URL, or claim our own metadata. */
const REFUSED = [
  'jwks_uri',
  'sector_identifier_uri',
  'request_uris',
  'org_id',
  'application_id',
  'capabilities',
  'idp_client_id',
  REGISTRATION_TOKEN_METADATA,
];
/** Set by oidc-provider itself, never taken from the request. */
const SERVER_SET = new Set(['client_id', 'client_id_issued_at', 'client_secret', 'client_secret_expires_at']);
const PERSON_GRANTS = ['authorization_code', 'refresh_token'];
/** JWK members only a private or symmetric key has. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'];
const MAX_BODY_BYTES = 16 * 1024;
const MAX_REDIRECT_URIS = 10;
const MAX_KEYS = 10;

/** The initial access token being used, as found by the adapter: its row id and organization. */
interface RegistrationTokenRef {
  id: string;
  orgId: string;
}

export interface DynamicRegistrationOptions {
  enabled: boolean;
  /** The token a presented value names, while it may still register a client. */
  usableToken: (presented: string) => Promise<RegistrationTokenRef | undefined>;
}

const invalid = (message: string) => new errors.InvalidClientMetadata(message);

/**
 * The registration policy: restricts a registration to what an Application of the token's
 * organization can be (a code + refresh client with exact https or loopback redirect URIs,
 * authenticating with a secret, inline keys or nothing), and ties it to that token. The
 * client is stored by the Client adapter, which spends the token (oauth-adapter.ts).
 */
async function organizationPolicy(
  options: DynamicRegistrationOptions,
  ctx: KoaContextWithOIDC,
  properties: AdapterPayload,
): Promise<void> {
  const body = ctx.oidc.body as Record<string, unknown>;
  if (Buffer.byteLength(JSON.stringify(body)) > MAX_BODY_BYTES) {
    throw invalid(`client metadata must be at most ${MAX_BODY_BYTES} bytes`);
  }
  const refused = REFUSED.find((key) => body[key] !== undefined);
  if (refused) throw invalid(`${refused} is not accepted by this server`);
  for (const key of Object.keys(body)) if (!ACCEPTED.has(key) && !SERVER_SET.has(key)) delete properties[key];

  const name = properties.client_name;
  if (name !== undefined && (typeof name !== 'string' || name.trim().length === 0 || name.length > 200)) {
    throw invalid('client_name must be 1 to 200 characters');
  }
  const redirects = properties.redirect_uris;
  if (!Array.isArray(redirects) || redirects.length === 0 || redirects.length > MAX_REDIRECT_URIS) {
    throw new errors.InvalidRedirectUri(`redirect_uris must list 1 to ${MAX_REDIRECT_URIS} URLs`);
  }
  for (const uri of redirects) {
    const problem = typeof uri === 'string' ? checkCallbackUrl(uri, 'redirect_uris').problems[0] : undefined;
    if (typeof uri !== 'string' || problem) {
      throw new errors.InvalidRedirectUri(`redirect_uris ${problem?.message ?? 'must be strings'}`);
    }
  }
  const grants = properties.grant_types ?? ['authorization_code'];
  if (!Array.isArray(grants) || grants.some((g) => !PERSON_GRANTS.includes(g as string))) {
    throw invalid('grant_types may only be authorization_code and refresh_token');
  }
  const responses = properties.response_types ?? ['code'];
  if (!Array.isArray(responses) || responses.some((r) => r !== 'code')) {
    throw invalid('response_types may only be code');
  }
  const method = properties.token_endpoint_auth_method ?? 'client_secret_basic';
  if (!TOKEN_ENDPOINT_AUTH_METHODS.includes(method as never)) {
    throw invalid(`token_endpoint_auth_method must be one of ${TOKEN_ENDPOINT_AUTH_METHODS.join(', ')}`);
  }
  if (method === 'private_key_jwt') {
    const keys = (properties.jwks as { keys?: unknown } | undefined)?.keys;
    if (!Array.isArray(keys) || keys.length === 0 || keys.length > MAX_KEYS) {
      throw invalid(`a private_key_jwt client registers its public keys inline: jwks with 1 to ${MAX_KEYS} keys`);
    }
    if (keys.some((k) => typeof k !== 'object' || k === null || PRIVATE_MEMBERS.some((m) => m in k))) {
      throw invalid('jwks must hold public keys only');
    }
  } else if (properties.jwks !== undefined) {
    throw invalid('jwks is only for a private_key_jwt client');
  }

  // oidc-provider decides whether to mint a secret before this policy runs (an HS256 alg the
  // policy then drops is enough): only a client_secret_basic client gets one.
  if (method !== 'client_secret_basic') {
    delete properties.client_secret;
    delete properties.client_secret_expires_at;
  }

  // The token was found a moment ago; it is spent (or found spent) when the client is stored.
  const token = await options.usableToken(ctx.oidc.getAccessToken());
  if (!token) throw new errors.InvalidToken('initial access token not found');
  Object.assign(properties, {
    grant_types: PERSON_GRANTS,
    response_types: ['code'],
    token_endpoint_auth_method: method,
    org_id: token.orgId,
    capabilities: [],
    [REGISTRATION_TOKEN_METADATA]: token.id,
  });
}

/** oidc-provider's `features.registration`, off unless OAUTH_DYNAMIC_REGISTRATION=true. */
export function registrationFeature(
  options: DynamicRegistrationOptions,
): NonNullable<Configuration['features']>['registration'] {
  if (!options.enabled) return { enabled: false };
  return {
    enabled: true,
    initialAccessToken: true,
    // RFC 7592 management (read, update, delete by registration access token) stays off: an
    // admin changes the client as an Application, through the admin API.
    issueRegistrationAccessToken: false,
    idFactory: () => `cg_app_${crypto.getRandomValues(Buffer.alloc(16)).toString('base64url')}`,
    secretFactory: () => newClientSecret().secret,
    policies: { [ORGANIZATION_POLICY]: (ctx, properties) => organizationPolicy(options, ctx, properties) },
  };
}

/**
 * The initial access token as oidc-provider's InitialAccessToken model reads it: the
 * presented value is the id; a token revoked, expired or spent is not found (401
 * invalid_token). Issuing goes through the admin API, never through the provider.
 */
export function registrationTokenPayload(presented: string, token: { expiresAt: Date; createdAt: Date }) {
  return {
    jti: presented,
    kind: 'InitialAccessToken',
    iat: Math.floor(token.createdAt.getTime() / 1_000),
    exp: Math.floor(token.expiresAt.getTime() / 1_000),
    policies: [ORGANIZATION_POLICY],
  };
}

/** Our own metadata, never shown back to the registering client. */
export const HIDDEN_FROM_REGISTRANT = ['org_id', 'application_id', 'capabilities', REGISTRATION_TOKEN_METADATA];
