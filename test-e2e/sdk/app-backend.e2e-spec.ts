import { RpcClient } from '@context-gateway/messaging';
import {
  adminClient as sdkAdmin,
  ContextGateway,
  GatewayError,
  GrantRevokedError,
  type SyncStatus,
} from '@context-gateway/node';
import { type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';

import { OPERATOR_TOKEN } from '../support/identity-admin.js';
import { connectSourceAccount, waitForBrokerToKnowApp } from '../support/source-connection.js';
import { startTestStack, type TestStack, waitFor } from '../support/test-stack.js';

// An app backend's life with one connection, written once against a client interface and run
// through each surface an app can use (STYLE.md §12): raw HTTP, and @context-gateway/node.
// connect session → (the person consents: done over the broker's contract, no browser) →
// the connection → its first sync → every record, page by page → sync now → revoke → the very
// next read fails with grant_revoked.
const CLIENT_ID = 'cg-e2e-sdk-github';
const CLIENT_SECRET = 'cg-e2e-sdk-github-secret-0123456789';
const CALLBACK = 'http://127.0.0.1:9/sdk-callback';
const SCOPES = ['github:read:profile', 'github:read:repos'];
const REPOS = 23;

/** What the scenario needs from a surface; each answers with the API's JSON shapes. */
interface AppSurface {
  createSession(state: string): Promise<{ id: string; connectUrl: string; expiresAt: string }>;
  connection(connectionId: string): Promise<{ id: string; status: string; scopes: string[] }>;
  syncStatus(connectionId: string): Promise<SyncStatus>;
  syncNow(connectionId: string): Promise<{ state: string }>;
  /** Every record of a type, `limit` per page: the ids in order, the pages asked for, syncedAt of the last. */
  readAll(
    connectionId: string,
    type: 'code.repository',
    limit: number,
  ): Promise<{ externalIds: string[]; pages: number; syncedAt: string | null }>;
  revoke(connectionId: string): Promise<{ grantId: string }>;
}

/** A failed call, the same from every surface: what an app would branch on. */
class Refused extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    readonly requestId: string | undefined,
  ) {
    super(`${code} (${status})`);
  }
}

function httpSurface(gatewayUrl: string, apiKey: string): AppSurface {
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${gatewayUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${apiKey}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json = (await res.json()) as { code: string; requestId?: string };
    if (!res.ok) throw new Refused(json.code, res.status, json.requestId);
    return json as T;
  };
  return {
    createSession: (state) =>
      call('POST', '/v1/connect/sessions', { integration: 'github', scopes: SCOPES, callbackUrl: CALLBACK, state }),
    connection: (id) => call('GET', `/v1/connections/${id}`),
    syncStatus: (id) => call('GET', `/v1/connections/${id}/sync`),
    syncNow: (id) => call('POST', `/v1/connections/${id}/sync`),
    async readAll(id, type, limit) {
      const externalIds: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      let syncedAt: string | null;
      do {
        const query: string = `type=${type}&limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const page: { records: { externalId: string }[]; nextCursor: string | null; syncedAt: string | null } =
          await call('GET', `/v1/connections/${id}/records?${query}`);
        pages++;
        externalIds.push(...page.records.map((r) => r.externalId));
        cursor = page.nextCursor;
        syncedAt = page.syncedAt;
      } while (cursor);
      return { externalIds, pages, syncedAt };
    },
    revoke: (id) => call('DELETE', `/v1/connections/${id}/grant`),
  };
}

function sdkSurface(client: ContextGateway): AppSurface {
  // The SDK's errors are rethrown as they are, so the scenario also sees their classes.
  return {
    createSession: (state) =>
      client.connect.createSession({ integration: 'github', scopes: SCOPES, callbackUrl: CALLBACK, state }),
    connection: (id) => client.connections.get(id),
    syncStatus: (id) => client.sync.status(id),
    syncNow: (id) => client.sync.now(id),
    async readAll(id, type, limit) {
      const externalIds: string[] = [];
      let pages = 0;
      let syncedAt: string | null = null;
      for await (const page of client.records.pages(id, { type, limit })) {
        pages++;
        syncedAt = page.syncedAt;
      }
      for await (const record of client.records.iterate(id, { type, limit })) externalIds.push(record.externalId);
      return { externalIds, pages, syncedAt };
    },
    revoke: (id) => client.connections.revoke(id),
  };
}

let stack: TestStack;
let sim: RunningSimulator;
let nc: NatsConnection;
let broker: RpcClient;
let app: { orgId: string; appId: string; name: string; callbackUrl: string };
let apiKey: string;

beforeAll(async () => {
  sim = await startSimulator({ provider: 'github' });
  stack = await startTestStack('sdk', {
    OPERATOR_TOKEN,
    INTEGRATION_ALLOW_INSECURE_HTTP: 'true',
    INTEGRATION_GITHUB_BASE_URL: sim.url,
    INTEGRATION_GITHUB_CLIENT_ID: CLIENT_ID,
    INTEGRATION_GITHUB_CLIENT_SECRET: CLIENT_SECRET,
    SYNC_INTERVAL_MS: '3600000',
  });
  const port = new URL(stack.gatewayUrl).port;
  await sim.control.registerClient({
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [`http://localhost:${port}/v1/connect/callback`, `http://127.0.0.1:${port}/v1/connect/callback`],
    name: 'Context Gateway',
  });
  for (const login of ['octo-http', 'octo-sdk', 'octo-errors'])
    await sim.control.createAccount({ login, counts: { repos: REPOS, starred: 0, issues: 0 } });

  // The operator's side through the SDK's admin client, as `pnpm cg` would.
  const admin = sdkAdmin({ baseUrl: stack.gatewayUrl, operatorToken: OPERATOR_TOKEN });
  const org = await admin.organizations.create({ name: 'SDK Org' });
  await admin.integrations.set(org.id, ['github']);
  const created = await admin.applications.create(org.id, {
    name: 'SDK App',
    callbackUrls: [CALLBACK],
    integrations: ['github'],
    scopes: SCOPES,
  });
  apiKey = (await admin.apiKeys.issue(created.id)).secret;
  app = { orgId: org.id, appId: created.id, name: created.name, callbackUrl: CALLBACK };
  nc = await connect(stack.natsOptions());
  broker = new RpcClient(nc);
  await waitForBrokerToKnowApp(broker, app, 'github', SCOPES);
}, 180_000);

afterAll(async () => {
  await nc?.close();
  await stack?.stop();
  await sim?.stop();
}, 60_000);

describe.each([
  ['raw HTTP', 'octo-http', () => httpSurface(stack.gatewayUrl, apiKey)],
  [
    '@context-gateway/node',
    'octo-sdk',
    () => sdkSurface(new ContextGateway({ baseUrl: stack.gatewayUrl, apiKey, maxRetries: 2 })),
  ],
] as const)('an app backend through %s', (_name, login, surface) => {
  let api: AppSurface;
  let connectionId: string;

  beforeAll(() => {
    api = surface();
  });

  it('starts a connect session whose link shows the consent page', async () => {
    const session = await api.createSession('st-1');
    // The link is on the gateway's public URL (localhost), the stack is reached on 127.0.0.1.
    const link = new URL(session.connectUrl);
    expect(link.pathname).toMatch(/^\/v1\/connect\/[A-Za-z0-9_-]{43}$/);
    expect(link.port).toBe(new URL(stack.gatewayUrl).port);
    expect(Date.parse(session.expiresAt)).toBeGreaterThan(Date.now());
    const page = await fetch(new URL(link.pathname, stack.gatewayUrl));
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('SDK App');
  });

  it('reads the connection the person granted, once its first sync has finished', async () => {
    ({ connectionId } = await connectSourceAccount(broker, app, 'github', SCOPES, login));
    expect(await api.connection(connectionId)).toMatchObject({ id: connectionId, status: 'active', scopes: SCOPES });
    const status = await waitFor(
      'the first sync',
      async () => {
        const s = await api.syncStatus(connectionId);
        return s.state === 'idle' && s.lastSuccessAt ? s : undefined;
      },
      60_000,
    );
    expect(status).toMatchObject({ lastError: null, recordsSynced: 1 + REPOS });
  }, 90_000);

  it('reads every record page by page, each once, with the freshness of the sync', async () => {
    const all = await api.readAll(connectionId, 'code.repository', 5);
    expect(all.pages).toBe(Math.ceil(REPOS / 5));
    expect(all.externalIds).toHaveLength(REPOS);
    expect(new Set(all.externalIds).size).toBe(REPOS);
    expect(Date.parse(all.syncedAt!)).toBeGreaterThan(Date.now() - 5 * 60_000);
  });

  it('asks for a sync now', async () => {
    expect(await api.syncNow(connectionId)).toMatchObject({ state: 'queued' });
  });

  it('revokes its grant, and its very next read fails with grant_revoked', async () => {
    expect((await api.revoke(connectionId)).grantId).toEqual(expect.any(String));
    const error = await api.readAll(connectionId, 'code.repository', 5).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'grant_revoked', status: 403, requestId: expect.any(String) });
  });
});

describe('@context-gateway/node errors', () => {
  it('are typed classes an app can tell apart without reading the status', async () => {
    const client = new ContextGateway({ baseUrl: stack.gatewayUrl, apiKey });
    const { connectionId } = await connectSourceAccount(broker, app, 'github', SCOPES, 'octo-errors');
    await client.connections.revoke(connectionId);
    const revoked = await client.records.list(connectionId).catch((e: unknown) => e);
    expect(revoked).toBeInstanceOf(GrantRevokedError);
    const wrongKey = new ContextGateway({ baseUrl: stack.gatewayUrl, apiKey: 'cg_sk_not-a-key' });
    const unauthenticated = await wrongKey.connections.get(connectionId).catch((e: unknown) => e);
    expect(unauthenticated).toBeInstanceOf(GatewayError);
    expect(unauthenticated).toMatchObject({ code: 'unauthenticated', status: 401 });
  }, 60_000);
});
