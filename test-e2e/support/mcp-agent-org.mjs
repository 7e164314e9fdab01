// @ts-check
// An organization ready for gateway mode without a browser, as an operator and a person set
// one up: GitHub (the simulator) knows the gateway as a client and has the person's account,
// the org allows GitHub and registers its GitHub MCP server, an agent application is allowed
// its tools, and a person signed up with a passkey, connected GitHub for the agent and holds
// an access token for it (authorization code + PKCE). Used by the MCP conformance run and
// `pnpm bench:mcp`.
import { rpc } from '@context-gateway/proto';

import { personAccessToken } from '../bench/bench-people.mjs';
import { connectAccount } from './connect-account.mjs';
import { signUpWithSoftPasskey } from './soft-passkey.mjs';

/**
 * @typedef {{
 *   gatewayUrl: string,
 *   operatorToken: string,
 *   broker: import('@context-gateway/messaging').RpcClient,
 *   sim: { control: { registerClient(c: object): Promise<unknown>, createAccount(a: object): Promise<unknown> } },
 *   githubClient: { id: string, secret: string },
 *   redirectUris: string[],
 *   login: string,
 *   repos: number,
 *   orgName: string,
 *   appName: string,
 *   callback: string,
 *   scopes: string[],
 *   mcpServer: Record<string, unknown>,
 * }} McpAgentOrgOptions
 *   `redirectUris`: the gateway's connect callbacks as GitHub should know them; `mcpServer`:
 *   the body of `PUT …/mcp-servers/github`.
 */

/**
 * @param {McpAgentOrgOptions} options
 * @returns {Promise<{ orgId: string, applicationId: string, userId: string, accessToken: string,
 *   tokenFor: (scope: string) => Promise<string>,
 *   anotherPerson: (scope: string) => Promise<string>,
 *   admin: (method: string, path: string, body?: unknown) => Promise<any> }>}
 *   `tokenFor`: another access token of the same person and application, for `scope`;
 *   `anotherPerson`: a new person (signed up, nothing connected) with an access token of the
 *   application for `scope`.
 */
export async function mcpAgentOrg(options) {
  const { gatewayUrl, operatorToken, broker, sim, githubClient, callback, scopes } = options;
  await sim.control.registerClient({
    client_id: githubClient.id,
    client_secret: githubClient.secret,
    redirect_uris: options.redirectUris,
    name: 'Context Gateway',
  });
  await sim.control.createAccount({ login: options.login, counts: { repos: options.repos, starred: 0, issues: 0 } });
  /** @type {(method: string, path: string, body?: unknown) => Promise<any>} */
  const admin = async (method, path, body) => {
    const res = await fetch(`${gatewayUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${operatorToken}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const org = await admin('POST', '/v1/admin/organizations', { name: options.orgName });
  await admin('PUT', `/v1/admin/organizations/${org.id}/policy/integrations`, { integrations: ['github'] });
  const app = await admin('POST', `/v1/admin/organizations/${org.id}/applications`, {
    name: options.appName,
    callbackUrls: [callback],
    integrations: ['github'],
    scopes,
  });
  await admin('PUT', `/v1/admin/organizations/${org.id}/applications/${app.id}/oauth-client`, {
    tokenEndpointAuthMethod: 'none',
  });
  await admin('PUT', `/v1/admin/organizations/${org.id}/mcp-servers/github`, options.mcpServer);
  const session = {
    orgId: org.id,
    applicationId: app.id,
    applicationName: options.appName,
    integration: 'github',
    scopes,
    callbackUrl: callback,
  };
  // The broker learns applications from the CONTROL stream: a fresh one can be unknown a moment.
  for (let i = 0; ; i++) {
    try {
      await broker.request(rpc.broker.createConnectSession, session);
      break;
    } catch (error) {
      if (i > 200) throw error;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const person = await signUpWithSoftPasskey(gatewayUrl);
  await connectAccount(broker, session, person, options.login);
  const tokenFor = (/** @type {string} */ scope) =>
    personAccessToken(gatewayUrl, person.sessionToken, { clientId: app.clientId, redirectUri: callback, scope });
  const accessToken = await tokenFor('github:tools');
  const anotherPerson = async (/** @type {string} */ scope) => {
    const other = await signUpWithSoftPasskey(gatewayUrl);
    return personAccessToken(gatewayUrl, other.sessionToken, { clientId: app.clientId, redirectUri: callback, scope });
  };
  return { orgId: org.id, applicationId: app.id, userId: person.userId, accessToken, tokenFor, anotherPerson, admin };
}
