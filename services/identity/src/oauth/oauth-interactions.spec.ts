import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';

import { describe, expect, it } from '@jest/globals';
import { errors, type Provider } from 'oidc-provider';

import { type InteractionDeps, OAuthInteractions } from './oauth-interactions.js';

// A metadata-URL client's document is looked up again at consent; when its cache ended during
// a long sign-in, that lookup fetches it anew and may fail as the authorization endpoint's
// would (slow, too large, changed). The person then gets the same coded 400 page, never a 500.

const CLIENT = 'https://client.example/metadata.json';

/** An interaction at consent for user-1, whose client lookup fails with `error`. */
function interactionsWhoseClientFails(error: Error) {
  const provider = {
    interactionDetails: () =>
      Promise.resolve({
        uid: 'uid-1',
        prompt: { name: 'consent', reasons: ['metadata_client_application'], details: {} },
        params: { client_id: CLIENT, redirect_uri: 'https://client.example/cb', scope: 'openid' },
        session: { accountId: 'user-1' },
      }),
    Client: { find: () => Promise.reject(error) },
  } as unknown as Provider;
  const deps: InteractionDeps = {
    provider,
    publicOrigin: 'https://gateway.example',
    issuerPath: '/oauth',
    resource: 'https://gateway.example',
    oidcScopes: ['openid'],
    resolveSession: () =>
      Promise.resolve({ userId: 'user-1', displayName: 'Ada', authenticatedAt: new Date(), method: 'passkey' }),
    now: () => Date.now(),
    applicationName: () => Promise.resolve(undefined),
    metadataClients: {
      applicationsFor: () => Promise.resolve([]),
      boundApplicationId: () => Promise.resolve(undefined),
      bind: () => Promise.resolve(),
      refused: () => Promise.resolve(),
    },
  };
  return new OAuthInteractions(deps);
}

/** A request as the browser sends it (signed in), and the response written to it. */
async function answer(interactions: OAuthInteractions, method: 'GET' | 'POST') {
  const req = Object.assign(Readable.from(method === 'POST' ? [Buffer.from('decision=allow')] : []), {
    method,
    url: '/oauth/interaction/uid-1',
    headers: { cookie: '__Host-cg_session=tok', origin: 'https://gateway.example' },
  }) as unknown as IncomingMessage;
  const written = { status: 0, body: '' };
  const res = {
    headersSent: false,
    writeHead(status: number) {
      written.status = status;
      return this;
    },
    end(body?: string) {
      written.body = body ?? '';
    },
  } as unknown as ServerResponse;
  await interactions.handle(req, res);
  return { status: written.status, code: /Error code: <code>([^<]+)<\/code>/.exec(written.body)?.[1] };
}

describe('consent for a metadata-URL client whose document can no longer be fetched', () => {
  const timeout = new errors.InvalidClient('client_id metadata document fetch failed');
  Object.assign(timeout, { cause: new DOMException('The operation was aborted due to timeout', 'TimeoutError') });
  const mismatch = new errors.InvalidClientMetadata(
    'client_id metadata document client_id does not match the expected value',
  );
  const schema = new errors.InvalidClientMetadata('client_secret is mandatory property');

  it.each([
    ['slow', timeout, 'client_metadata_timeout'],
    ['changed to another client_id', mismatch, 'client_metadata_mismatch'],
    ['changed into an invalid one', schema, 'client_metadata_invalid'],
  ])('%s: a coded 400 page on the consent page and on Allow', async (_what, error, code) => {
    const interactions = interactionsWhoseClientFails(error);
    expect(await answer(interactions, 'GET')).toEqual({ status: 400, code });
    expect(await answer(interactions, 'POST')).toEqual({ status: 400, code });
  });

  it('any other failure is still a server error (oauth-http answers it)', async () => {
    await expect(answer(interactionsWhoseClientFails(new Error('database down')), 'GET')).rejects.toThrow(
      'database down',
    );
  });
});
