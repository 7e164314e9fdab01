import { timingSafeEqual } from 'node:crypto';

import type { AdapterPayload } from 'oidc-provider';

import type { Application } from '../generated/prisma/client.js';
import { hasSecretShape, newSecret, sha256 } from '../secrets.js';

/** OAuth client secrets: `cg_cs_` + 256 random bits; only the SHA-256 is stored. */
const CLIENT_SECRET_PREFIX = 'cg_cs_';

/** Ways an application may authenticate at the token endpoint. */
export const TOKEN_ENDPOINT_AUTH_METHODS = ['client_secret_basic', 'private_key_jwt', 'none'] as const;
export type TokenEndpointAuthMethod = (typeof TOKEN_ENDPOINT_AUTH_METHODS)[number];

/** Our own client metadata, beside the standard ones: what the provider needs from the Application row. */
export const CLIENT_EXTRA_METADATA = [
  'capabilities',
  'application_id',
  'org_id',
  'idp_client_id',
  // A dynamically registered client's initial access token, while it is being registered.
  'registration_token_id',
] as const;

/** RFC 8693's grant type; this server exchanges only ID tokens of the organization's IdP. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

export function newClientSecret(): { secret: string; hash: string } {
  const secret = newSecret(CLIENT_SECRET_PREFIX);
  return { secret, hash: sha256(secret) };
}

/** Constant-time: the presented secret's hash against the stored one. */
export function verifyClientSecret(storedHash: string | undefined, presented: string): boolean {
  if (!storedHash || !hasSecretShape(presented, CLIENT_SECRET_PREFIX)) return false;
  const a = Buffer.from(sha256(presented), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * An Application as oidc-provider client metadata, or undefined when it cannot act as a
 * client yet (a confidential client with no secret or keys, a public one with no
 * callback URL): the provider then answers `invalid_client`.
 *
 * - Redirect URIs are the application's callback URLs, compared exactly (already
 *   validated and normalized when stored, applications/application-rules.ts).
 * - Public clients (`none`) get code + refresh only: PKCE is their proof. Confidential
 *   clients may also use client credentials to act as themselves, and token exchange when
 *   the admin named their client id at the organization's IdP.
 */
export function clientMetadata(app: Application): AdapterPayload | undefined {
  // A metadata-URL client is known by its URL only (its document, fetched by oidc-provider).
  if (app.clientMetadataUrl) return undefined;
  const method = app.tokenEndpointAuthMethod as TokenEndpointAuthMethod;
  const redirects = app.callbackUrls;
  const personGrants = redirects.length > 0 ? ['authorization_code', 'refresh_token'] : [];
  const base: AdapterPayload = {
    client_id: app.clientId,
    client_name: app.name,
    redirect_uris: redirects,
    response_types: personGrants.length > 0 ? ['code'] : [],
    capabilities: app.scopes,
    application_id: app.id,
    org_id: app.orgId,
  };
  // A dynamically registered client acts for people only: no client credentials of its own.
  const confidentialGrants = app.registrationTokenId
    ? personGrants
    : [...personGrants, 'client_credentials', ...(app.idpClientId ? [TOKEN_EXCHANGE_GRANT] : [])];
  const exchange = app.idpClientId ? { idp_client_id: app.idpClientId } : {};
  switch (method) {
    case 'none':
      return personGrants.length > 0
        ? { ...base, token_endpoint_auth_method: 'none', grant_types: personGrants }
        : undefined;
    case 'client_secret_basic':
      if (!app.clientSecretHash) return undefined;
      return {
        ...base,
        token_endpoint_auth_method: 'client_secret_basic',
        // The hash stands in for the secret: compareClientSecret is overridden to hash
        // what is presented (oauth-provider.ts), and no HMAC algorithm is enabled that
        // would use this value as a key.
        client_secret: app.clientSecretHash,
        grant_types: confidentialGrants,
        ...exchange,
      };
    case 'private_key_jwt':
      if (!app.jwks && !app.jwksUri) return undefined;
      return {
        ...base,
        token_endpoint_auth_method: 'private_key_jwt',
        ...(app.jwksUri ? { jwks_uri: app.jwksUri } : { jwks: app.jwks as unknown as AdapterPayload['jwks'] }),
        grant_types: confidentialGrants,
        ...exchange,
      };
    default:
      return undefined;
  }
}
