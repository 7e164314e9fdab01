import { Clock } from '@context-gateway/clock';
import { EnvelopeCipher, openKeyProvider, refuseNewKeyWhileInUse } from '@context-gateway/crypto';
import { AppError } from '@context-gateway/errors';
import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { type AdapterPayload, errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';

import { SessionsService } from '../accounts/sessions.service.js';
import { ApplicationEvents } from '../applications/application-events.js';
import { type Env, oauthKeyringPath } from '../env.js';
import type { Application } from '../generated/prisma/client.js';
import { sha256 } from '../secrets.js';
import { SsoTokenExchange } from '../sso/sso-token-exchange.js';
import { registrationTokenPayload } from './dynamic-registration.js';
import { oauthAdapterFactory } from './oauth-adapter.js';
import { OAuthAudit } from './oauth-audit.js';
import { OAuthClientsRepository } from './oauth-clients.repository.js';
import { installOAuthRoutes, type OnRequestHost, type ServingProvider } from './oauth-http.js';
import { OAuthInteractions } from './oauth-interactions.js';
import { OAuthKeyStore, type ProviderKeys } from './oauth-keys.js';
import { OAuthKeysRepository } from './oauth-keys.repository.js';
import { createOAuthProvider, type MetadataClientState, OIDC_SCOPES } from './oauth-provider.js';
import { OAuthRegistrationRepository } from './oauth-registration.repository.js';
import { OAuthRegistrationService } from './oauth-registration.service.js';
import { OAuthStoreRepository } from './oauth-store.repository.js';
import { TokenRevocationEvents, TokenRevocationKind } from './token-revocation-events.js';

const PRUNE_EVERY_MS = 10 * 60_000;
/** oauth_payloads model of the pointer from (person, application) to their token exchanges' grant. */
const EXCHANGE_GRANT_MODEL = 'ExchangeGrant';
/** Expired codes and tokens are kept an hour, then deleted. */
const PRUNE_GRACE_MS = 60 * 60_000;
/** How often the keys are re-read: a rotation is published, then used, without a restart. */
const KEY_RELOAD_EVERY_MS = 5 * 60_000;

/** The public URLs the authorization server answers for, from GATEWAY_PUBLIC_URL. */
function oauthUrls(gatewayPublicUrl: string): { issuer: string; issuerPath: string; resource: string; origin: string } {
  const base = gatewayPublicUrl.replace(/\/+$/, '');
  const issuer = `${base}/oauth`;
  return { issuer, issuerPath: new URL(issuer).pathname, resource: base, origin: new URL(base).origin };
}

/** Which keys a provider was built with, in signing order: a change means rebuild. */
const fingerprint = (keys: ProviderKeys) =>
  JSON.stringify([keys.jwks.map((k) => k.kid), keys.cookieKeys.length, keys.cookieKeys[0]?.slice(0, 8)]);

/**
 * Builds the authorization server at boot (keys from the database, opened with the
 * keyring) and serves it on identity's HTTP port under `/oauth`. Every few minutes it
 * re-reads the keys and, when they changed (a rotation published or activated), builds a
 * new provider and swaps it in between two requests; all state is in Postgres, so nothing
 * in flight is lost.
 */
@Injectable()
export class OAuthServer implements OnModuleInit, OnApplicationShutdown {
  #serving: ServingProvider | undefined;
  /** The KEK's provider (a PKCS#11 session with KEY_PROVIDER=pkcs11), closed at shutdown. */
  #keyring: { close(): void } | undefined;
  #fingerprint = '';
  #timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly store: OAuthStoreRepository,
    private readonly clients: OAuthClientsRepository,
    private readonly keys: OAuthKeysRepository,
    private readonly sessions: SessionsService,
    private readonly http: HttpAdapterHost,
    private readonly clock: Clock,
    private readonly revocations: TokenRevocationEvents,
    private readonly audit: OAuthAudit,
    private readonly exchange: SsoTokenExchange,
    private readonly registrationTokens: OAuthRegistrationService,
    private readonly registrations: OAuthRegistrationRepository,
    private readonly applicationEvents: ApplicationEvents,
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onModuleInit(): Promise<void> {
    const keyring = await openKeyProvider(this.env, {
      localPath: oauthKeyringPath(this.env),
      createIfMissing: this.env.OAUTH_KEYRING_CREATE_IF_MISSING,
      beforeCreate: refuseNewKeyWhileInUse(() => this.keys.count(), 'authorization server keys sealed under it'),
    });
    this.#keyring = keyring;
    const keyStore = new OAuthKeyStore(
      this.keys,
      new EnvelopeCipher(keyring),
      this.clock,
      this.env.OAUTH_KEY_ACTIVATION_SECONDS * 1_000,
    );
    const urls = oauthUrls(this.env.GATEWAY_PUBLIC_URL);
    await this.#build(keyStore, urls);
    installOAuthRoutes(this.http.httpAdapter.getInstance<OnRequestHost>(), {
      issuerPath: urls.issuerPath,
      current: () => {
        if (!this.#serving) throw new Error('the authorization server is not started');
        return this.#serving;
      },
      logger: this.logger,
    });
    this.#every(PRUNE_EVERY_MS, 'pruning OAuth state', () =>
      this.store.pruneExpired(this.clock.date(), PRUNE_GRACE_MS),
    );
    this.#every(KEY_RELOAD_EVERY_MS, 'reloading OAuth keys', () => this.#build(keyStore, urls));
    this.logger.info({ issuer: urls.issuer, resource: urls.resource }, 'authorization server ready');
  }

  onApplicationShutdown(): void {
    for (const timer of this.#timers) clearInterval(timer);
    this.#keyring?.close();
  }

  /** Builds a provider for the current keys, unless the serving one already has them. */
  async #build(keyStore: OAuthKeyStore, urls: ReturnType<typeof oauthUrls>): Promise<void> {
    const keys = await keyStore.load();
    const print = fingerprint(keys);
    if (print === this.#fingerprint) return;
    const asMetadataClient = (app: Application) => ({ id: app.id, orgId: app.orgId, scopes: app.scopes });
    const provider = createOAuthProvider({
      metadataClients: {
        allowedHosts: this.env.OAUTH_CIMD_ALLOWED_HOSTS,
        allowedByAnOrganization: (url) => this.clients.metadataUrlAllowed(url),
        test: { caFile: this.env.OAUTH_CIMD_TEST_CA_FILE, allowLoopback: this.env.OAUTH_CIMD_ALLOW_LOOPBACK },
        applicationFor: async (url, accountId) => {
          const apps = await this.clients.metadataUrlApplicationsOf(url, accountId);
          return apps.length === 1 && apps[0] ? asMetadataClient(apps[0]) : undefined;
        },
        boundApplication: async (grantId) => {
          const app = await this.clients.boundApplication(grantId);
          return app ? asMetadataClient(app) : undefined;
        },
      },
      issuer: urls.issuer,
      resource: urls.resource,
      keys,
      registration: {
        enabled: this.env.OAUTH_DYNAMIC_REGISTRATION,
        usableToken: (presented) => this.registrationTokens.usable(presented),
      },
      adapter: oauthAdapterFactory({
        store: this.store,
        clients: this.clients,
        clock: this.clock,
        registration: {
          findToken: async (presented) => {
            const token = await this.registrationTokens.usable(presented);
            return token ? registrationTokenPayload(presented, token) : undefined;
          },
          register: (clientId, metadata) => this.#register(clientId, metadata, urls.issuerPath),
        },
      }),
      findAccount: async (accountId) => {
        const user = await this.clients.findUser(accountId);
        return user ? { accountId: user.id, name: user.displayName } : undefined;
      },
      ttl: {
        accessTokenSeconds: this.env.OAUTH_ACCESS_TOKEN_TTL_SECONDS,
        refreshTokenSeconds: this.env.OAUTH_REFRESH_TOKEN_TTL_SECONDS,
      },
      clock: this.clock,
      tokenExchange: {
        subject: async ({ orgId, idpClientId, subjectToken }) => {
          const verified = await this.exchange.verify({ orgId, idpClientId, idToken: subjectToken });
          // Single use, recorded before anyone is provisioned: a replayed ID token gets nothing.
          if (!(await this.store.useOnce('ExchangedSubjectToken', verified.replayKey, verified.expiresAt))) {
            throw new AppError('sso_response_invalid', 'The ID token was refused: it was already exchanged');
          }
          return verified.person();
        },
        // A refused subject token (forged, foreign, replayed, too old) is a denial in the trail.
        refused: async (client, code) => {
          const orgId = client['org_id'];
          const applicationId = client['application_id'];
          if (typeof orgId !== 'string' || typeof applicationId !== 'string') return;
          await this.audit.record({
            action: 'exchange_refused',
            errorCode: code,
            orgId,
            applicationId,
            clientId: client.clientId,
            userId: undefined,
            grantId: undefined,
            operation: `POST ${urls.issuerPath}/token urn:ietf:params:oauth:grant-type:token-exchange`,
          });
        },
        // (person, application) → the exchanges' grant; indexed by grant id, so revoking the
        // grant (revokeByGrantId) removes the pointer with it.
        exchangeGrants: {
          find: async (accountId, clientId) => {
            const row = await this.store.find(EXCHANGE_GRANT_MODEL, { id: `${accountId}:${clientId}` });
            const grantId = row?.payload['grantId'];
            return typeof grantId === 'string' ? grantId : undefined;
          },
          remember: (accountId, clientId, grantId, expiresAt) =>
            this.store.upsert(
              EXCHANGE_GRANT_MODEL,
              `${accountId}:${clientId}`,
              { grantId },
              { grantId },
              expiresAt ?? null,
            ),
        },
      },
    });
    provider.on('server_error', (_ctx, error) => this.logger.error({ err: error }, 'authorization server error'));
    // A grant revoked (refresh token revoked, a spent one replayed): its access tokens are
    // announced void before the response leaves, so the next request with one fails.
    provider.on('grant.revoked', (ctx: KoaContextWithOIDC, grantId: string) => {
      const reused = ctx.oidc.route === 'token';
      const announce = async () => {
        const who = delegation(ctx) ?? (await this.#metadataClientDelegation(ctx, grantId));
        if (!who) return;
        await Promise.all([
          this.revocations.revoked(who.orgId, TokenRevocationKind.GRANT, grantId).catch(() => undefined),
          this.audit.record({
            ...who,
            action: reused ? 'reuse_detected' : 'revoked',
            grantId,
            operation: reused
              ? `POST ${urls.issuerPath}/token ${String(ctx.oidc.params?.['grant_type'])}`
              : `POST ${urls.issuerPath}/token/revocation`,
          }),
        ]);
      };
      beforeResponse(ctx, announce());
    });
    // Every token response: issued (code, client credentials) or refreshed, with the person.
    provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
      const who = delegation(ctx);
      if (!who) return;
      const grantType = String(ctx.oidc.params?.['grant_type']);
      beforeResponse(
        ctx,
        this.audit.record({
          ...who,
          action: grantType === 'refresh_token' ? 'refreshed' : 'issued',
          grantId: ctx.oidc.entities.AccessToken?.grantId ?? ctx.oidc.entities.Grant?.jti,
          operation: `POST ${urls.issuerPath}/token ${grantType}`,
        }),
      );
    });
    provider.use(async (ctx, next) => {
      await next();
      await Promise.all((ctx.state as PendingState).pending ?? []);
    });
    provider.use(async (ctx, next) => {
      await next();
      rfcTokenError(ctx);
    });
    const interactions = new OAuthInteractions({
      provider,
      publicOrigin: urls.origin,
      issuerPath: urls.issuerPath,
      resource: urls.resource,
      oidcScopes: OIDC_SCOPES,
      resolveSession: async (token) => {
        try {
          const session = await this.sessions.resolve(token);
          return {
            userId: session.userId,
            displayName: session.user.displayName,
            authenticatedAt: session.createdAt,
            method: session.method,
          };
        } catch {
          return undefined;
        }
      },
      now: () => this.clock.now(),
      applicationName: async (clientId) => (await this.clients.findByClientId(clientId))?.name,
      metadataClients: {
        applicationsFor: (url, userId) => this.clients.metadataUrlApplicationsOf(url, userId),
        boundApplicationId: async (grantId) => (await this.clients.grantBinding(grantId))?.applicationId,
        bind: (grantId, app, accountId, clientId) =>
          this.clients.bindGrant({
            grantId,
            applicationId: app.id,
            orgId: app.orgId,
            accountId,
            clientId,
            expiresAt: new Date(this.clock.now() + this.env.OAUTH_REFRESH_TOKEN_TTL_SECONDS * 1_000),
          }),
        refused: async (clientId, userId, code) => {
          // Audited in each organization the person belongs to: theirs did not allow the client.
          // A person of none is audited with no organization (the audit contract's "none is
          // known"): no auditor sees it, the person does, by their user id.
          const memberOf = await this.clients.organizationsOf(userId);
          const orgIds = memberOf.length > 0 ? memberOf : [''];
          await Promise.all(
            orgIds.map((orgId) =>
              this.audit.record({
                action: 'client_refused',
                errorCode: code,
                orgId,
                applicationId: '',
                clientId,
                userId,
                grantId: undefined,
                operation: `GET ${urls.issuerPath}/interaction consent`,
              }),
            ),
          );
          this.logger.info({ clientId, userId, code }, 'metadata-URL client refused for this person');
        },
      },
    });
    if (this.#serving) this.logger.info({ kids: keys.jwks.map((k) => k.kid) }, 'authorization server keys changed');
    this.#serving = { callback: provider.callback(), interactions };
    this.#fingerprint = print;
  }

  /**
   * A dynamically registered client becomes an application of its initial access token's
   * organization, with no capabilities, the token spent in the same transaction; audited
   * with the token (and so the admin who issued it) and the client.
   */
  async #register(clientId: string, metadata: AdapterPayload, issuerPath: string): Promise<void> {
    const secret = metadata.client_secret;
    const jwks = metadata.jwks as { keys: object[] } | undefined;
    const registered = await this.registrations.registerApplication(
      String(metadata['registration_token_id']),
      this.clock.date(),
      {
        name: typeof metadata.client_name === 'string' ? metadata.client_name.trim() : 'Registered client',
        clientId,
        callbackUrls: (metadata.redirect_uris ?? []) as string[],
        tokenEndpointAuthMethod: String(metadata.token_endpoint_auth_method),
        clientSecretHash: typeof secret === 'string' ? sha256(secret) : null,
        jwks: jwks ?? null,
      },
    );
    if (!registered) throw new errors.InvalidToken('initial access token not found');
    const { token, application } = registered;
    await this.applicationEvents.published(application);
    await this.audit.record({
      action: 'registered',
      orgId: application.orgId,
      applicationId: application.id,
      clientId,
      userId: undefined,
      grantId: undefined,
      operation: `POST ${issuerPath}/reg initial_access_token:${token.id} issued_by:${token.createdBy}`,
    });
    this.logger.info({ clientId, applicationId: application.id, registrationTokenId: token.id }, 'client registered');
  }

  /** Who a metadata-URL client's grant acts for, from its binding (the client itself names no organization). */
  async #metadataClientDelegation(ctx: KoaContextWithOIDC, grantId: string) {
    const client = ctx.oidc.client;
    if (!client?.clientIdMetadataDocument) return undefined;
    const binding = await this.clients.grantBinding(grantId);
    if (!binding) return undefined;
    const e = ctx.oidc.entities;
    const userId = e.AccessToken?.accountId ?? e.RefreshToken?.accountId ?? e.Grant?.accountId;
    return { orgId: binding.orgId, applicationId: binding.applicationId, clientId: client.clientId, userId };
  }

  #every(ms: number, what: string, work: () => Promise<unknown>): void {
    const timer = setInterval(() => {
      work().catch((error: Error) => this.logger.warn({ err: error.message }, `${what} failed`));
    }, ms);
    timer.unref();
    this.#timers.push(timer);
  }
}

type PendingState = { pending?: Promise<unknown>[] };

/** Work that must be done before the response leaves (provider events are not awaited by oidc-provider). */
function beforeResponse(ctx: KoaContextWithOIDC, work: Promise<unknown>): void {
  ((ctx.state as PendingState).pending ??= []).push(work);
}

/** The application (and the person, if any) a token request or revocation acts for. */
function delegation(
  ctx: KoaContextWithOIDC,
): { orgId: string; applicationId: string; clientId: string; userId: string | undefined } | undefined {
  const client = ctx.oidc.client;
  // A metadata-URL client: the application its token was minted for (extraTokenClaims).
  const bound = (ctx.state as MetadataClientState).metadataClientApplication;
  const orgId = bound?.orgId ?? client?.['org_id'];
  const applicationId = bound?.id ?? client?.['application_id'];
  if (!client || typeof orgId !== 'string' || typeof applicationId !== 'string') return undefined;
  const e = ctx.oidc.entities;
  const userId = e.AccessToken?.accountId ?? e.RefreshToken?.accountId ?? e.Grant?.accountId ?? e.Account?.accountId;
  return { orgId, applicationId, clientId: client.clientId, userId };
}

/**
 * RFC 6749 §5.2's code where oidc-provider answers another: a client using a grant type it is
 * not registered for (client credentials by a public client) is `unauthorized_client`, not
 * `invalid_request`. Only that one error, recognised by oidc-provider's own description.
 */
function rfcTokenError(ctx: { status: number; body: unknown }): void {
  const body = ctx.body as { error?: unknown; error_description?: unknown } | undefined;
  if (
    ctx.status === 400 &&
    body?.error === 'invalid_request' &&
    body.error_description === 'requested grant type is not allowed for this client'
  )
    body.error = 'unauthorized_client';
}
