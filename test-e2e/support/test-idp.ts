import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import * as oauth from 'oauth4webapi';
import Provider, { type ClientMetadata, type Configuration } from 'oidc-provider';

/** A person at the organization's IdP: the claims it vouches for. */
interface IdpUser {
  sub: string;
  email: string;
  email_verified: boolean;
  name: string;
  groups?: string[];
}

export interface TestIdp {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Who the IdP signs in next (its sign-in step is this test's, not ours). */
  user: IdpUser;
  /**
   * Sees, and may alter, each redirect back to the gateway before the browser gets it: an
   * IdP (or someone in the middle) answering wrongly.
   */
  onCallback: ((callbackUrl: URL) => void) | undefined;
  stop(): Promise<void>;
}

/** Another relying party of the same IdP: an application's own client there (for token exchange). */
export interface IdpRelyingParty {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
}

/**
 * An organization's own identity provider for tests: a second, independent oidc-provider on
 * its own port, with one confidential client (the gateway). Its login step is test-only: it
 * signs in `idp.user` at once and consents to what was asked; everything else (discovery,
 * PKCE, nonce, ID token signing, `iss` in the response) is oidc-provider's own behaviour.
 */
export async function startTestIdp(redirectUri: string, others: IdpRelyingParty[] = []): Promise<TestIdp> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const idp: TestIdp = {
    issuer,
    clientId: 'context-gateway',
    clientSecret: 'test-idp-client-secret-0123456789abcdef',
    user: { sub: 'idp-user-1', email: 'alice@acme.test', email_verified: true, name: 'Alice Acme' },
    onCallback: undefined,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const configuration: Configuration = {
    clients: [
      {
        client_id: idp.clientId,
        client_secret: idp.clientSecret,
        redirect_uris: [redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      ...others.map((rp): ClientMetadata => ({
        client_id: rp.clientId,
        client_secret: rp.clientSecret,
        redirect_uris: [rp.redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      })),
    ],
    scopes: ['openid', 'email', 'profile'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'groups'] },
    findAccount: (_ctx, sub) => {
      const user = idp.user;
      if (sub !== user.sub) return undefined;
      return { accountId: sub, claims: () => ({ ...user }) };
    },
    // The claims request parameter (OIDC Core 5.5) lets a relying party ask for claims in the ID token itself.
    features: { devInteractions: { enabled: false }, claimsParameter: { enabled: true } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
    cookies: { keys: ['test-idp-cookie-key-0123456789'] },
  };
  const provider = new Provider(issuer, configuration);
  const callback = provider.callback();
  server.on('request', (req, res) => {
    const setHeader = res.setHeader.bind(res);
    res.setHeader = (name, value) => {
      if (name.toLowerCase() === 'location' && typeof value === 'string' && value.startsWith(redirectUri)) {
        const url = new URL(value);
        idp.onCallback?.(url);
        return setHeader(name, url.href);
      }
      return setHeader(name, value);
    };
    if (!req.url?.startsWith('/interaction/')) {
      void callback(req, res);
      return;
    }
    void (async () => {
      const details = await provider.interactionDetails(req, res);
      if (details.prompt.name === 'login') {
        await provider.interactionFinished(req, res, { login: { accountId: idp.user.sub } });
        return;
      }
      const grant = new provider.Grant({ accountId: idp.user.sub, clientId: String(details.params['client_id']) });
      const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[] };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } });
    })().catch((error: unknown) => {
      res.statusCode = 500;
      res.end(String(error));
    });
  });
  return idp;
}

/**
 * An application signing the IdP's current user in at the IdP as its own relying party
 * (code + PKCE, nonce; oauth4webapi), asking for the email claims in the ID token itself,
 * and returning that ID token: what an application holds before a token exchange. The IdP's
 * redirects are followed with its cookies, as a browser would.
 */
export async function idTokenFromIdp(idp: TestIdp, rp: IdpRelyingParty): Promise<string> {
  const insecure = { [oauth.allowInsecureRequests]: true } as const;
  const issuer = new URL(idp.issuer);
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure }),
  );
  const client: oauth.Client = { client_id: rp.clientId };
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = oauth.generateRandomNonce();
  const url = new URL(as.authorization_endpoint ?? '');
  url.search = new URLSearchParams({
    client_id: rp.clientId,
    redirect_uri: rp.redirectUri,
    response_type: 'code',
    scope: 'openid email profile',
    claims: JSON.stringify({ id_token: { email: null, email_verified: null, name: null } }),
    state,
    nonce,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  }).toString();
  const cookies = new Map<string, string>();
  let next = url;
  for (let hop = 0; ; hop++) {
    if (hop > 10) throw new Error('the IdP redirected too often');
    const res = await fetch(next, {
      redirect: 'manual',
      headers: { cookie: [...cookies].map(([name, value]) => `${name}=${value}`).join('; ') },
    });
    for (const line of res.headers.getSetCookie()) {
      const pair = line.split(';', 1)[0] ?? '';
      const eq = pair.indexOf('=');
      cookies.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    const location = res.headers.get('location');
    if (!location) throw new Error(`the IdP stopped with ${res.status}`);
    next = new URL(location, next);
    if (next.href.startsWith(rp.redirectUri)) break;
  }
  const params = oauth.validateAuthResponse(as, client, next, state);
  const tokens = await oauth.processAuthorizationCodeResponse(
    as,
    client,
    await oauth.authorizationCodeGrantRequest(
      as,
      client,
      oauth.ClientSecretBasic(rp.clientSecret),
      params,
      rp.redirectUri,
      verifier,
      insecure,
    ),
    { expectedNonce: nonce, requireIdToken: true },
  );
  if (!tokens.id_token) throw new Error('the IdP issued no ID token');
  return tokens.id_token;
}
