import type { Clock } from '@context-gateway/clock';
import {
  type Adapter,
  type Client,
  type Configuration,
  errors,
  interactionPolicy,
  type KoaContextWithOIDC,
  Provider,
  type ResourceServer,
} from 'oidc-provider';

import {
  clientIdMetadataDocumentFeature,
  FETCH_RESPONSE_BODY_LIMITS,
  metadataDocumentErrorCode,
  type MetadataDocumentPolicy,
  metadataFetch,
  refuseOwnMetadataInDocument,
  sectorIdentifierUriValidate,
} from './client-metadata-documents.js';
import { oauthErrorPage } from './consent-page.js';
import {
  type DynamicRegistrationOptions,
  HIDDEN_FROM_REGISTRANT,
  registrationFeature,
} from './dynamic-registration.js';
import { CLIENT_EXTRA_METADATA, verifyClientSecret } from './oauth-clients.js';
import type { ProviderKeys } from './oauth-keys.js';
import { registerTokenExchange, type TokenExchangeOptions } from './oauth-token-exchange.js';

/** Where the authorization server lives and what it serves. */
export interface OAuthProviderOptions {
  /** `${GATEWAY_PUBLIC_URL}/oauth`: the stable public issuer (RFC 8414 `issuer`, `iss` of every token). */
  issuer: string;
  /** The gateway's resource URI (RFC 8707): the one audience access tokens are minted for. */
  resource: string;
  keys: ProviderKeys;
  adapter: (model: string) => Adapter;
  /** The person behind `sub`; undefined for a deleted account, which ends every token naming it. */
  findAccount: (accountId: string) => Promise<{ accountId: string; name: string } | undefined>;
  ttl: { accessTokenSeconds: number; refreshTokenSeconds: number };
  clock: Clock;
  /** RFC 8693: the person an application's subject token names, and the grant they already share. */
  tokenExchange: Pick<TokenExchangeOptions, 'subject' | 'exchangeGrants' | 'refused'>;
  /** Dynamic client registration (RFC 7591): off unless enabled, and then by initial access token only. */
  registration: DynamicRegistrationOptions;
  /** Metadata-URL clients (CIMD): which URLs may be fetched, and which application a person's grant acts as. */
  metadataClients: MetadataDocumentPolicy & {
    /** The one application the person may authorize this URL as now; undefined when none (or several). */
    applicationFor: (url: string, accountId: string) => Promise<MetadataClientApplication | undefined>;
    /** The application a grant was bound to at consent, while it still may act. */
    boundApplication: (grantId: string) => Promise<MetadataClientApplication | undefined>;
  };
}

/** The application a metadata-URL client acts as, for one person's grant. */
interface MetadataClientApplication {
  id: string;
  orgId: string;
  scopes: string[];
}

/** The grant a token request or authorization continues, when there is one yet. */
function grantIdOf(ctx: KoaContextWithOIDC): string | undefined {
  const e = ctx.oidc.entities;
  return e.AuthorizationCode?.grantId ?? e.RefreshToken?.grantId ?? e.Grant?.jti;
}

/** Where extraTokenClaims leaves the application a metadata-URL client's token was minted for (audit reads it). */
export interface MetadataClientState {
  metadataClientApplication?: MetadataClientApplication;
}

/** Scopes beyond the applications' capabilities: OpenID Connect's own. */
export const OIDC_SCOPES = ['openid', 'offline_access', 'profile'];

/** The one interaction route (login and consent): `/oauth/interaction/<uid>`. */
function interactionPath(issuerPath: string, uid: string): string {
  return `${issuerPath}/interaction/${uid}`;
}

/**
 * oidc-provider, configured as the gateway's OAuth 2.1 authorization server. Every
 * choice a default would get wrong is made here, with its reason; see docs/identity.md.
 */
export function createOAuthProvider(options: OAuthProviderOptions): Provider {
  const issuerPath = new URL(options.issuer).pathname.replace(/\/$/, '');
  const policy = interactionPolicy.base();
  // The gateway session (__Host-cg_session) is the sign-in, not oidc-provider's own session
  // cookie: every authorization passes through the login interaction, which finishes at
  // once when the browser's gateway session is valid. Signing out of the gateway thus
  // also ends the provider's ability to authorize silently.
  policy
    .get('login')
    ?.checks.add(
      new interactionPolicy.Check('gateway_session', 'the gateway session is checked on every authorization', (ctx) =>
        ctx.oidc.result?.login ? interactionPolicy.Check.NO_NEED_TO_PROMPT : interactionPolicy.Check.REQUEST_PROMPT,
      ),
    );
  // A metadata-URL client is asked every time, whatever its application_type, unless the
  // grant already in use is bound to the application the person's organization allows now:
  // the consent interaction is where its application is chosen (and a person of no
  // organization that allowed it is refused with a code, audited). Without this a web client
  // whose person has no application would see none of its scopes offered and end in a bare
  // access_denied, unexplained and unaudited.
  policy.get('consent')?.checks.add(
    new interactionPolicy.Check(
      'metadata_client_application',
      "a metadata-URL client acts as the application of the person's organization, chosen at consent",
      async (ctx) => {
        if (!ctx.oidc.client?.clientIdMetadataDocument || ctx.oidc.result?.consent) {
          return interactionPolicy.Check.NO_NEED_TO_PROMPT;
        }
        const grantId = ctx.oidc.grant?.jti;
        const accountId = ctx.oidc.session?.accountId;
        if (grantId && accountId) {
          const [bound, current] = await Promise.all([
            options.metadataClients.boundApplication(grantId),
            options.metadataClients.applicationFor(ctx.oidc.client.clientId, accountId),
          ]);
          if (bound && current && bound.id === current.id) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
        }
        return interactionPolicy.Check.REQUEST_PROMPT;
      },
    ),
  );

  // Every access token: a JWT (RFC 9068) for the gateway alone, ES256, carrying the client's capabilities at most.
  const resourceServer = (client: Client, capabilities?: string[]): ResourceServer => ({
    scope: (capabilities ?? (client['capabilities'] as string[] | undefined) ?? []).join(' '),
    audience: options.resource,
    accessTokenTTL: options.ttl.accessTokenSeconds,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'ES256' } },
  });

  /**
   * A metadata-URL client's capabilities are its application's, and which application that is
   * depends on the person: the grant's bound one once consented, before that the one the
   * signed-in person's organization allowed; before sign-in, none yet (the authorization is
   * checked again when the person comes back from signing in).
   */
  const metadataClientCapabilities = async (ctx: KoaContextWithOIDC, client: Client): Promise<string[]> => {
    const grantId = grantIdOf(ctx);
    if (grantId) {
      const bound = await options.metadataClients.boundApplication(grantId);
      if (bound) return bound.scopes;
    }
    const accountId = ctx.oidc.session?.accountId;
    if (!accountId) return [];
    return (await options.metadataClients.applicationFor(client.clientId, accountId))?.scopes ?? [];
  };

  const configuration: Configuration = {
    adapter: options.adapter,
    jwks: { keys: options.keys.jwks },
    cookies: {
      keys: options.keys.cookieKeys,
      names: { session: 'cg_oauth_session', interaction: 'cg_oauth_interaction', resume: 'cg_oauth_resume' },
      long: { httpOnly: true, sameSite: 'lax', signed: true },
      short: { httpOnly: true, sameSite: 'lax', signed: true },
    },
    async findAccount(_ctx, sub) {
      const account = await options.findAccount(sub);
      if (!account) return undefined;
      return { accountId: account.accountId, claims: () => ({ sub: account.accountId, name: account.name }) };
    },
    scopes: OIDC_SCOPES,
    claims: { openid: ['sub'], profile: ['name'] },
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    extraClientMetadata: {
      properties: [...CLIENT_EXTRA_METADATA],
      validator: (_ctx, key, value, metadata) => refuseOwnMetadataInDocument(metadata['client_id'], key, value),
    },
    // Outgoing requests (metadata documents): oidc-provider's SSRF-guarded fetch; see metadataFetch.
    fetch: metadataFetch(options.metadataClients) as Configuration['fetch'],
    // Never a metadata document's sector_identifier_uri, and every answer size-limited.
    sectorIdentifierUriValidate,
    fetchResponseBodyLimits: FETCH_RESPONSE_BODY_LIMITS,
    // client_secret_post and client_secret_jwt are off: the stored secret is a hash, and
    // one way per kind of client (basic, key, PKCE-only) is enough.
    clientAuthMethods: ['none', 'client_secret_basic', 'private_key_jwt'],
    enabledJWA: {
      clientAuthSigningAlgValues: ['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA'],
      idTokenSigningAlgValues: ['RS256', 'ES256'],
    },
    responseTypes: ['code'],
    // S256 only (plain is not offered by oidc-provider 9), and required of every client,
    // confidential ones too (OAuth 2.1).
    pkce: { required: () => true },
    // Every refresh rotates; presenting a spent refresh token revokes the whole grant.
    // A metadata-URL client's grant is checked here, the last moment before oidc-provider
    // spends the presented token (after its reuse check): a grant whose application was
    // disabled, or whose person left its organization, is invalid_grant with the token
    // unspent, and a failing lookup is a 500 the client may retry with the same token
    // without tripping reuse detection. extraTokenClaims checks again (and for codes).
    async rotateRefreshToken(ctx) {
      const client = ctx.oidc.client;
      const grantId = ctx.oidc.entities.RefreshToken?.grantId;
      if (client?.clientIdMetadataDocument && !(grantId && (await options.metadataClients.boundApplication(grantId)))) {
        throw new errors.InvalidGrant(
          'client_not_allowed: no application of your organization allows this client any more',
        );
      }
      return true;
    },
    issueRefreshToken: (_ctx, client) => Promise.resolve(client.grantTypeAllowed('refresh_token')),
    // Tokens outlive oidc-provider's own short session: the gateway session is the sign-in,
    // and a grant lasts until it expires or is revoked.
    expiresWithSession: () => Promise.resolve(false),
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // Only the client a token was issued to learns anything about it.
        allowedPolicy: (ctx, _client, token) => Promise.resolve(token.clientId === ctx.oidc.client?.clientId),
      },
      revocation: {
        enabled: true,
        // A client revokes only its own tokens (a public client's attempt at another's is ignored).
        allowedPolicy: (ctx, _client, token) => {
          if (token.clientId === ctx.oidc.client?.clientId) return Promise.resolve(true);
          if (ctx.oidc.client?.clientAuthMethod === 'none') return Promise.resolve(false);
          throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        },
      },
      // Dynamic client registration (RFC 7591) is off unless OAUTH_DYNAMIC_REGISTRATION=true;
      // on, it needs an initial access token an organization admin issued, and the client
      // becomes an application of that organization (dynamic-registration.ts).
      registration: registrationFeature(options.registration),
      clientIdMetadataDocument: clientIdMetadataDocumentFeature(options.metadataClients),
      resourceIndicators: {
        enabled: true,
        defaultResource: () => options.resource,
        useGrantedResource: () => true,
        async getResourceServerInfo(ctx, resourceIndicator, client) {
          if (resourceIndicator !== options.resource) throw new errors.InvalidTarget();
          if (!client.clientIdMetadataDocument) return resourceServer(client);
          return resourceServer(client, await metadataClientCapabilities(ctx, client));
        },
      },
    },
    // The application and organization a token acts for, so the gateway needs no lookup
    // to know whose token it holds (RFC 9068 already carries client_id).
    // grant_id: the token family, so a revoked grant voids its access tokens at the gateway
    // on the next request (control.v1.tokens_revoked).
    // A metadata-URL client's token names the application its grant was bound to at consent
    // (the URL alone is shared by every organization that allowed it).
    async extraTokenClaims(ctx, token) {
      const client = ctx.oidc.client;
      if (!client) return undefined;
      const grantId = 'grantId' in token && typeof token.grantId === 'string' ? token.grantId : undefined;
      if (client.clientIdMetadataDocument) {
        const bound = grantId ? await options.metadataClients.boundApplication(grantId) : undefined;
        if (!bound) {
          throw new errors.InvalidGrant(
            'client_not_allowed: no application of your organization allows this client any more',
          );
        }
        (ctx.state as MetadataClientState).metadataClientApplication = bound;
        return { org_id: bound.orgId, app_id: bound.id, grant_id: grantId };
      }
      return {
        org_id: client['org_id'] as string,
        app_id: client['application_id'] as string,
        ...(grantId ? { grant_id: grantId } : {}),
      };
    },
    ttl: {
      AccessToken: options.ttl.accessTokenSeconds,
      ClientCredentials: options.ttl.accessTokenSeconds,
      AuthorizationCode: 60,
      RefreshToken: options.ttl.refreshTokenSeconds,
      Grant: options.ttl.refreshTokenSeconds,
      Interaction: 600,
      Session: 600,
      IdToken: 600,
    },
    interactions: {
      policy,
      url: (_ctx, interaction) => interactionPath(issuerPath, interaction.uid),
    },
    clientBasedCORS: (_ctx, origin, client) =>
      client.clientAuthMethod === 'none' &&
      (client.redirectUris ?? []).some((uri) => URL.parse(uri)?.origin === origin),
    renderError(ctx, out, error) {
      // A page a person can read, with the stable OAuth error code; never a request parameter echoed.
      // A metadata document that could not be used is named more precisely (slow, too large, ...).
      const clientId = ctx.oidc?.params?.['client_id'];
      const documentCode = metadataDocumentErrorCode(error, typeof clientId === 'string' ? clientId : undefined);
      ctx.type = 'html';
      ctx.set('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
      ctx.body = oauthErrorPage(
        'This request cannot continue',
        documentCode
          ? 'The client identified itself with a metadata document that Context Gateway cannot use.'
          : 'The application sent a request that Context Gateway refuses.',
        documentCode ?? String(out.error),
      );
    },
  };

  const provider = new Provider(options.issuer, configuration);
  // Behind the gateway's reverse proxy: the public scheme and host are X-Forwarded-*.
  provider.proxy = true;
  // The client secret row holds only a hash; compare against the hash of what was presented.
  Object.defineProperty(provider.Client.prototype, 'compareClientSecret', {
    value(this: { clientSecret?: string }, actual: string) {
      return verifyClientSecret(this.clientSecret, actual);
    },
  });
  // A registered client's answer (RFC 7591 §3.2.1) shows its metadata, never our own properties.
  provider.use(async (ctx, next) => {
    await next();
    const route = (ctx as Partial<KoaContextWithOIDC>).oidc?.route;
    if (route === 'registration' && ctx.status === 201 && ctx.body && typeof ctx.body === 'object') {
      for (const key of HIDDEN_FROM_REGISTRANT) delete (ctx.body as Record<string, unknown>)[key];
    }
  });
  registerTokenExchange(provider, { resource: options.resource, resourceServer, ...options.tokenExchange });
  return provider;
}
