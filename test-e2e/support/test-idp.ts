import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import Provider, { type Configuration } from 'oidc-provider';

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

/**
 * An organization's own identity provider for tests: a second, independent oidc-provider on
 * its own port, with one confidential client (the gateway). Its login step is test-only: it
 * signs in `idp.user` at once and consents to what was asked; everything else (discovery,
 * PKCE, nonce, ID token signing, `iss` in the response) is oidc-provider's own behaviour.
 */
export async function startTestIdp(redirectUri: string): Promise<TestIdp> {
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
    ],
    scopes: ['openid', 'email', 'profile'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'groups'] },
    findAccount: (_ctx, sub) => {
      const user = idp.user;
      if (sub !== user.sub) return undefined;
      return { accountId: sub, claims: () => ({ ...user }) };
    },
    features: { devInteractions: { enabled: false } },
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
      const grant = new provider.Grant({ accountId: idp.user.sub, clientId: idp.clientId });
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
