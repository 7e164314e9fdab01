import { type RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';

import { browserUrl } from './browser.js';
import { connectAccount } from './connect-account.mjs';
import { type SignedInPerson, signUpWithSoftPasskey } from './soft-passkey.mjs';
import { waitFor } from './test-stack.js';

/**
 * Connects a simulated source account for an app, the way the connect flow does it, but
 * without the consent page: connect session → consent (ALLOW by a signed-in person, signed
 * with their passkey) → the source's login and consent (simulator form, no browser) → the
 * broker's callback (support/connect-account.mjs). The broker then provisions the Personal
 * Server, which verifies the signature, records the grant and queues the INITIAL sync. A
 * person comes from `signUpWithSoftPasskey` (support/soft-passkey.mjs), or from a browser
 * context with a virtual authenticator (`browserPerson`, support/browser.ts).
 */
export async function connectSourceAccount(
  client: RpcClient,
  app: { orgId: string; appId: string; name: string; callbackUrl: string },
  integration: string,
  scopes: string[],
  login: string,
  person: SignedInPerson,
): Promise<{ connectionId: string; userId: string }> {
  const connectionId = await connectAccount(
    client,
    {
      orgId: app.orgId,
      applicationId: app.appId,
      applicationName: app.name,
      integration,
      scopes,
      callbackUrl: app.callbackUrl,
      appState: 'e2e',
    },
    person,
    login,
  );
  return { connectionId, userId: person.userId };
}

/**
 * Waits until the broker knows `app`: it learns applications from the CONTROL stream, so a
 * connect session for a freshly created app can be refused for a moment.
 */
export async function waitForBrokerToKnowApp(
  client: RpcClient,
  app: { orgId: string; appId: string; name: string; callbackUrl: string },
  integration: string,
  scopes: string[],
): Promise<void> {
  await waitFor('the broker to know the app', async () =>
    client
      .request(rpc.broker.createConnectSession, {
        orgId: app.orgId,
        applicationId: app.appId,
        applicationName: app.name,
        integration,
        scopes,
        callbackUrl: app.callbackUrl,
      })
      .then(() => true),
  );
}

/** A new person, signed up and in with a software passkey at this stack's gateway. */
export function newPerson(gatewayUrl: string): Promise<SignedInPerson> {
  return signUpWithSoftPasskey(browserUrl(gatewayUrl));
}
