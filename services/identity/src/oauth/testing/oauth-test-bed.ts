import { webcrypto } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { RpcClient } from '@context-gateway/messaging';
import { freeTestPort } from '@context-gateway/messaging/testing';
import { rpc } from '@context-gateway/proto';
import type { RunningService } from '@context-gateway/service-kit';
import { ServiceHarness } from '@context-gateway/service-kit/testing';
import { expect } from '@jest/globals';
import * as oauth from 'oauth4webapi';

import { UsersRepository } from '../../accounts/accounts.repository.js';
import { SessionsService } from '../../accounts/sessions.service.js';
import { AppModule } from '../../app.module.js';
import { loadEnv } from '../../env.js';

// identity's authorization server, booted as main.ts boots it (real Postgres, real NATS),
// driven by oauth4webapi exactly as an application backend would drive it. The browser is a
// cookie jar following redirects; the person's sign-in is a gateway session opened by
// SessionsService, as a passkey ceremony would open it. Shared by the OAuth int specs.

export const insecure = { [oauth.allowInsecureRequests]: true } as const;

/** A browser, reduced to what matters here: cookies by name, manual redirects. */
export class Browser {
  readonly cookies = new Map<string, string>();

  constructor(private readonly bed: Pick<OAuthTestBed, 'base' | 'callback'>) {}

  async get(url: string, init: RequestInit = {}): Promise<Response> {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(new URL(url, this.bed.base), {
      ...init,
      redirect: 'manual',
      headers: { ...(init.headers as Record<string, string>), ...(cookie ? { cookie } : {}) },
    });
    for (const line of res.headers.getSetCookie()) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const expired = attrs.some((a) => /^\s*expires=Thu, 01 Jan 1970/i.test(a));
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, pair.slice(eq + 1).trim());
    }
    return res;
  }

  /** Follows redirects within the server until one leaves it (to the app) or a page answers. */
  async follow(url: string): Promise<Response> {
    const { base, callback } = this.bed;
    let res = await this.get(url);
    for (let i = 0; i < 10 && res.status >= 300 && res.status < 400; i += 1) {
      const next = new URL(res.headers.get('location') ?? '', base);
      if (next.origin !== new URL(base).origin || next.pathname === new URL(callback).pathname) return res;
      if (next.pathname.startsWith('/v1/auth/signin')) return res;
      res = await this.get(next.href);
    }
    return res;
  }
}

export interface OAuthTestBed {
  harness: ServiceHarness;
  service: RunningService;
  /** identity's origin, also the gateway origin it is configured for (GATEWAY_PUBLIC_URL). */
  base: string;
  /** The gateway's resource URI: the only audience of access tokens. */
  resource: string;
  /** The one redirect URI every test application registered. */
  callback: string;
  as: oauth.AuthorizationServer;
  confidential: { client: oauth.Client; secret: string; applicationId: string };
  publicClient: oauth.Client;
  keyClient: { client: oauth.Client; key: webcrypto.CryptoKey; kid: string };
  orgId: string;
  rpcClient: RpcClient;
  /** A signed-in person's gateway session, and who they are. */
  sessionToken: string;
  userId: string;
  /** An authorization request URL for `client`, with the defaults an app would send. */
  authorizationUrl(client: oauth.Client, params: Record<string, string>): string;
  /** The whole browser leg: authorize, sign in (gateway session), consent, back to the app. */
  authorize(
    client: oauth.Client,
    extra?: Record<string, string>,
  ): Promise<{ back: URL; verifier: string; state: string; page: string }>;
  exchange(
    client: oauth.Client,
    auth: oauth.ClientAuth,
    back: URL,
    verifier: string,
    state: string,
  ): Promise<oauth.TokenEndpointResponse>;
  bearer(token: string): Request;
  /** `identity.v1.configure_oauth_client` for one of the org's applications, as an admin would. */
  configureClient(
    applicationId: string,
    settings: { method: string; jwksJson?: string; rotateSecret?: boolean; idpClientId?: string },
  ): Promise<{ clientSecret: string; idpClientId: string }>;
  /** Rows oidc-provider stored (codes, tokens, grants, sessions, interactions). */
  payloadCount(): Promise<number>;
  stop(): Promise<void>;
}

/** Boots identity on a private NATS and schema, with three clients of one organization and a signed-in person. */
export async function startOAuthTestBed(
  schemaPrefix: string,
  extraEnv: Record<string, string> = {},
): Promise<OAuthTestBed> {
  const keyDir = await mkdtemp(join(tmpdir(), 'identity-oauth-'));
  const port = await freeTestPort();
  const base = `http://127.0.0.1:${port}`;
  const resource = base;
  const callback = `${base}/cb`;
  const harness = await ServiceHarness.start({
    schemaPrefix,
    migrationsDir: fileURLToPath(new URL('../../../prisma/migrations', import.meta.url)),
  });
  const service = await harness.run({
    name: 'identity',
    module: AppModule,
    loadEnv,
    env: {
      HTTP_PORT: String(port),
      GATEWAY_PUBLIC_URL: base,
      OAUTH_KEYRING_FILE: join(keyDir, 'identity-oauth.key'),
      // The organization IdPs of the token exchange tests listen on 127.0.0.1.
      SSO_ALLOW_INSECURE_LOCALHOST: 'true',
      ...extraEnv,
    },
  });

  const rpcClient = new RpcClient(harness.nc);
  const { organization } = await rpcClient.request(rpc.identity.createOrganization, { name: 'OAuth org' });
  const orgId = organization?.id ?? '';
  const create = async (name: string) =>
    (
      await rpcClient.request(rpc.identity.createApplication, {
        orgId,
        name,
        callbackUrls: [callback],
        integrations: ['github'],
        scopes: ['github:read:repos'],
      })
    ).application;
  const configure = (
    applicationId: string,
    settings: { method: string; jwksJson?: string; rotateSecret?: boolean; idpClientId?: string },
  ) =>
    rpcClient.request(rpc.identity.configureOAuthClient, {
      orgId,
      applicationId,
      tokenEndpointAuthMethod: settings.method,
      jwksJson: settings.jwksJson ?? '',
      rotateSecret: settings.rotateSecret ?? false,
      idpClientId: settings.idpClientId ?? '',
    });
  const backend = await create('Acme Backend');
  const cli = await create('Acme CLI');
  const { clientSecret: secret } = await configure(backend?.id ?? '', {
    method: 'client_secret_basic',
    rotateSecret: true,
  });
  await configure(cli?.id ?? '', { method: 'none' });
  // private_key_jwt: the application registers its public key; its private key never leaves it.
  const agent = await create('Acme Agent');
  const pair = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const kid = 'agent-key-1';
  const publicJwk = { ...(await webcrypto.subtle.exportKey('jwk', pair.publicKey)), kid, alg: 'ES256', use: 'sig' };
  await configure(agent?.id ?? '', { method: 'private_key_jwt', jwksJson: JSON.stringify({ keys: [publicJwk] }) });

  const user = await service.app
    .get(UsersRepository, { strict: false })
    .createUser({ displayName: 'Ada', webauthnUserId: 'handle-ada' });
  const sessionToken = (await service.app.get(SessionsService, { strict: false }).open(user.id, new Date())).token;

  const issuer = new URL(`${base}/oauth`);
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }),
  );

  const bed: OAuthTestBed = {
    harness,
    service,
    base,
    resource,
    callback,
    as,
    confidential: { client: { client_id: backend?.clientId ?? '' }, secret, applicationId: backend?.id ?? '' },
    publicClient: { client_id: cli?.clientId ?? '', token_endpoint_auth_method: 'none' },
    keyClient: { client: { client_id: agent?.clientId ?? '' }, key: pair.privateKey, kid },
    orgId,
    rpcClient,
    sessionToken,
    userId: user.id,
    configureClient: configure,
    authorizationUrl(client, params) {
      const url = new URL(as.authorization_endpoint ?? '');
      url.search = new URLSearchParams({
        client_id: client.client_id,
        redirect_uri: callback,
        response_type: 'code',
        scope: 'openid github:read:repos',
        resource,
        ...params,
      }).toString();
      return url.href;
    },
    async authorize(client, extra = {}) {
      const verifier = oauth.generateRandomCodeVerifier();
      const state = oauth.generateRandomState();
      const browser = new Browser(bed);
      browser.cookies.set('__Host-cg_session', bed.sessionToken);
      const url = bed.authorizationUrl(client, {
        code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        ...extra,
      });
      let res = await browser.follow(url);
      expect(res.status).toBe(200);
      const page = await res.text();
      const action = /<form method="post" action="([^"]+)"/.exec(page)?.[1] ?? '';
      res = await browser.get(action, {
        method: 'POST',
        body: 'decision=allow',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(base).origin },
      });
      res = await browser.follow(new URL(res.headers.get('location') ?? '', base).href);
      const back = new URL(res.headers.get('location') ?? '');
      return { back, verifier, state, page };
    },
    async exchange(client, auth, back, verifier, state) {
      const params = oauth.validateAuthResponse(as, client, back, state);
      const response = await oauth.authorizationCodeGrantRequest(as, client, auth, params, callback, verifier, {
        ...insecure,
        additionalParameters: { resource },
      });
      return oauth.processAuthorizationCodeResponse(as, client, response);
    },
    bearer(token) {
      return new Request(resource, { headers: { authorization: `Bearer ${token}` } });
    },
    async payloadCount() {
      const { rows } = await harness.db.pool.query<{ n: string }>('SELECT count(*) AS n FROM oauth_payloads');
      return Number(rows[0]?.n);
    },
    async stop() {
      await harness.stop();
      await rm(keyDir, { recursive: true, force: true });
    },
  };
  return bed;
}
