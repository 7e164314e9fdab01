// @ts-check
// The connect flow without a browser, for tests, benchmarks and the fault suite: what a person
// does on the consent page (Allow, signed with their passkey) and at the source's login, over
// the broker's contracts and the source simulator's pages.
import { ConnectDecision, rpc } from '@context-gateway/proto';
import { completeAuthorization } from '@context-gateway/source-simulators';

/**
 * Allows a connect session as `person`: reads the consent challenge the consent page would
 * show them, signs it with their passkey, and decides ALLOW.
 * @param {import('@context-gateway/messaging').RpcClient} client
 * @param {string} sessionToken the connect session's token (from the app's connect link)
 * @param {import('./soft-passkey.mjs').SignedInPerson} person
 * @param {{ apiKey?: string }} [extra]
 */
export async function allowConnectSession(client, sessionToken, person, extra = {}) {
  const shown = await client.request(rpc.broker.getConnectSession, {
    sessionToken,
    personSessionToken: person.sessionToken,
  });
  return client.request(rpc.broker.decideConnectSession, {
    sessionToken,
    decision: ConnectDecision.ALLOW,
    personSessionToken: person.sessionToken,
    consentAssertionJson: await person.sign(shown.consentChallenge),
    apiKey: extra.apiKey ?? '',
  });
}

/**
 * Connect session → consent (ALLOW, signed by the person's passkey) → the simulator's login
 * and consent → the broker's callback. The broker then provisions the Personal Server (which
 * verifies the signature), records the grant and queues the INITIAL sync. Returns the
 * connection id.
 * @param {import('@context-gateway/messaging').RpcClient} client
 * @param {{ orgId: string, applicationId: string, applicationName: string, integration: string, scopes: string[], callbackUrl: string, appState?: string }} session
 * @param {import('./soft-passkey.mjs').SignedInPerson} person
 * @param {string} login the simulator account
 */
export async function connectAccount(client, session, person, login) {
  const created = await client.request(rpc.broker.createConnectSession, session);
  const decided = await allowConnectSession(client, created.sessionToken, person);
  const { redirect } = await completeAuthorization(decided.redirectUrl, { login });
  const done = await client.request(
    rpc.broker.completeAuthorization,
    {
      callbackQuery: redirect.search.slice(1),
      stateCookie: decided.oauthState,
      personSessionToken: person.sessionToken,
    },
    { timeoutMs: 20_000 },
  );
  if (!done.connectionId) throw new Error(`connect failed: ${done.redirectUrl}`);
  return done.connectionId;
}
