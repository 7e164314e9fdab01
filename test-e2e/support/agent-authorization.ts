import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import * as oauth from 'oauth4webapi';
import type { Page } from 'playwright-core';

import { addVirtualAuthenticator, createAccountOnSigninPage } from './browser.js';
import { waitFor } from './test-stack.js';

const insecure = { [oauth.allowInsecureRequests]: true } as const;

/**
 * An agent's side of the gateway's authorization server, as a public client (authorization
 * code + PKCE S256, `resource` = the gateway): a loopback callback that notes where the
 * browser lands, then the code exchange. `start()` before the application is created (its
 * callback URL is `callback`), `discover()` once the gateway runs and the client id is known.
 */
export class AgentAuthorization {
  private landed: URL | undefined;
  private as: oauth.AuthorizationServer | undefined;
  private client: oauth.Client | undefined;
  private base = '';
  private readonly server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', this.callback);
    if (url.pathname === '/cb') this.landed = url;
    res.end('back at the agent');
  });
  /** The agent's redirect URI (loopback). */
  callback = '';

  private constructor() {}

  static async start(): Promise<AgentAuthorization> {
    const agent = new AgentAuthorization();
    await new Promise<void>((resolve) => agent.server.listen(0, '127.0.0.1', resolve));
    agent.callback = `http://127.0.0.1:${(agent.server.address() as AddressInfo).port}/cb`;
    return agent;
  }

  /** Reads the gateway's authorization server metadata (`base` as the browser reaches it). */
  async discover(base: string, clientId: string): Promise<void> {
    const issuer = new URL(`${base}/oauth`);
    this.as = await oauth.processDiscoveryResponse(
      issuer,
      await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }),
    );
    this.client = { client_id: clientId, token_endpoint_auth_method: 'none' };
    this.base = base;
  }

  /**
   * A new person signs up with a passkey (a virtual authenticator added to `page`) inside the
   * authorization and consents to `scope`; the agent exchanges the code. Returns its access token.
   */
  async signUpAndAuthorize(page: Page, name: string, scope: string): Promise<string> {
    const { as, client } = this.discovered();
    await addVirtualAuthenticator(page.context(), page);
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const url = new URL(as.authorization_endpoint ?? '');
    url.search = new URLSearchParams({
      client_id: client.client_id,
      redirect_uri: this.callback,
      response_type: 'code',
      scope,
      resource: this.base,
      state,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    }).toString();
    this.landed = undefined;
    await page.goto(url.href);
    await createAccountOnSigninPage(page, name);
    if (new URL(page.url()).pathname.startsWith('/oauth/interaction/'))
      await Promise.all([page.waitForURL(`${this.callback}**`), page.click('button[value=allow]')]);
    await waitFor('the callback', () => Promise.resolve(this.landed !== undefined));
    const params = oauth.validateAuthResponse(as, client, this.landed ?? new URL(this.callback), state);
    const response = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(as, client, oauth.None(), params, this.callback, verifier, insecure),
    );
    return response.access_token;
  }

  /** The person an access token acts for (its `sub`), after checking it as the gateway's. */
  async subject(accessToken: string): Promise<string> {
    const claims = await oauth.validateJwtAccessToken(
      this.discovered().as,
      new Request(this.base, { headers: { authorization: `Bearer ${accessToken}` } }),
      this.base,
      insecure,
    );
    return claims.sub;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private discovered(): { as: oauth.AuthorizationServer; client: oauth.Client } {
    if (!this.as || !this.client) throw new Error('discover() first');
    return { as: this.as, client: this.client };
  }
}
