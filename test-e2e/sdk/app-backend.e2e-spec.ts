import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { RpcClient } from '@context-gateway/messaging';
import {
  adminClient as sdkAdmin,
  ContextGateway,
  GatewayError,
  GrantRevokedError,
  type SyncStatus,
  Webhook,
} from '@context-gateway/node';
import { type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';

import { OPERATOR_TOKEN } from '../support/identity-admin.js';
import { connectSourceAccount, newPerson, waitForBrokerToKnowApp } from '../support/source-connection.js';
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

interface HookEvent {
  id: string;
  type: string;
  data: { connectionId: string; [key: string]: unknown };
}

/**
 * The app's webhook endpoint, as an app would write it: every delivery verified with the SDK
 * (Standard Webhooks signature and timestamp), handled once per `webhook-id` however often it
 * arrives. It can be stopped and started again on the same port.
 */
class Receiver {
  verifier: Webhook | undefined;
  /** Deliveries the handler processed, in arrival order (duplicates dropped). */
  readonly handled: HookEvent[] = [];
  deliveries = 0;
  refused = 0;
  #server: Server | undefined;
  #port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.#port}/hooks`;
  }

  async start(): Promise<void> {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.deliveries++;
        const body = Buffer.concat(chunks);
        let event: { type: string; data: HookEvent['data'] };
        try {
          event = this.verifier!.verify(body, req.headers) as typeof event;
        } catch {
          this.refused++;
          return res.writeHead(400).end();
        }
        const id = String(req.headers['webhook-id']);
        if (!this.handled.some((h) => h.id === id)) this.handled.push({ id, type: event.type, data: event.data });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => this.#server!.listen(this.#port, '127.0.0.1', resolve));
    this.#port = (this.#server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  of(connectionId: string): HookEvent[] {
    return this.handled.filter((h) => h.data.connectionId === connectionId);
  }
}
const receiver = new Receiver();
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
    // The app's webhook receiver is this test, on loopback over http: allowed for the test only.
    WEBHOOK_ALLOW_HTTP: 'true',
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    WEBHOOK_RETRY_BASE_MS: '200',
    WEBHOOK_RETRY_MAX_MS: '1000',
    WEBHOOK_POLL_MS: '100',
    WEBHOOK_TIMEOUT_MS: '2000',
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
  await receiver.start();
  const endpoint = await admin.webhooks.set(org.id, created.id, receiver.url);
  expect(endpoint.secret).toMatch(/^whsec_/);
  receiver.verifier = new Webhook(endpoint.secret!);
  nc = await connect(stack.natsOptions());
  broker = new RpcClient(nc);
  await waitForBrokerToKnowApp(broker, app, 'github', SCOPES);
}, 180_000);

afterAll(async () => {
  await receiver.stop();
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
    ({ connectionId } = await connectSourceAccount(
      broker,
      app,
      'github',
      SCOPES,
      login,
      await newPerson(stack.gatewayUrl),
    ));
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
    const { connectionId } = await connectSourceAccount(
      broker,
      app,
      'github',
      SCOPES,
      'octo-errors',
      await newPerson(stack.gatewayUrl),
    );
    await client.connections.revoke(connectionId);
    const revoked = await client.records.list(connectionId).catch((e: unknown) => e);
    expect(revoked).toBeInstanceOf(GrantRevokedError);
    const wrongKey = new ContextGateway({ baseUrl: stack.gatewayUrl, apiKey: 'cg_sk_not-a-key' });
    const unauthenticated = await wrongKey.connections.get(connectionId).catch((e: unknown) => e);
    expect(unauthenticated).toBeInstanceOf(GatewayError);
    expect(unauthenticated).toMatchObject({ code: 'unauthenticated', status: 401 });
  }, 60_000);
});

describe('webhooks to the app (Standard Webhooks, through @context-gateway/node)', () => {
  it('each connection of the scenario above was told created, synced and revoked, in that order, signed', async () => {
    const client = new ContextGateway({ baseUrl: stack.gatewayUrl, apiKey });
    const connections = await waitFor('the scenario connections to be revoked at the app', () => {
      const revoked = receiver.handled.filter((h) => h.type === 'grant.revoked').map((h) => h.data.connectionId);
      return Promise.resolve(revoked.length >= 3 ? revoked : undefined);
    });
    for (const connectionId of connections) {
      const types = receiver.of(connectionId).map((h) => h.type);
      expect(types[0]).toBe('connection.created');
      expect(types.at(-1)).toBe('grant.revoked');
      expect(types.slice(1, -1).every((t) => t === 'sync.completed')).toBe(true);
    }
    expect(receiver.refused).toBe(0);
    const synced = receiver.handled.find((h) => h.type === 'sync.completed')!;
    expect(synced.data).toMatchObject({ integration: 'github', records: 1 + REPOS, skipped: 0 });
    // The delivery log says the same, newest first.
    const log = [];
    for await (const m of client.webhooks.iterate({ pageSize: 4 })) log.push(m);
    expect(new Set(log.map((m) => m.id))).toEqual(new Set(receiver.handled.map((h) => h.id)));
    expect(log.every((m) => m.status === 'delivered')).toBe(true);
  }, 60_000);

  it('a receiver down for a while gets every event exactly once when it is back, in order per connection', async () => {
    const client = new ContextGateway({ baseUrl: stack.gatewayUrl, apiKey });
    await sim.control.createAccount({ login: 'octo-hooks', counts: { repos: 3, starred: 0, issues: 0 } });
    await receiver.stop();
    const { connectionId } = await connectSourceAccount(
      broker,
      app,
      'github',
      SCOPES,
      'octo-hooks',
      await newPerson(stack.gatewayUrl),
    );
    const log = async () =>
      (await client.webhooks.list({ limit: 100 })).messages.filter((m) => m.connectionId === connectionId);
    // The first sync's outcome is queued behind the failing connection.created.
    await waitFor(
      'connection.created and sync.completed queued, the first failing',
      async () => {
        const messages = await log();
        const created = messages.find((m) => m.type === 'connection.created');
        return created && created.attempts >= 2 && messages.some((m) => m.type === 'sync.completed')
          ? messages
          : undefined;
      },
      60_000,
    );
    const failing = (await log()).find((m) => m.type === 'connection.created')!;
    expect(failing).toMatchObject({ status: 'pending', lastError: 'connection_refused', lastStatus: null });
    await client.connections.revoke(connectionId);
    await receiver.start();
    const events = await waitFor(
      'every event of the connection handled',
      () => {
        const handled = receiver.of(connectionId);
        return Promise.resolve(handled.some((h) => h.type === 'grant.revoked') ? handled : undefined);
      },
      60_000,
    );
    expect(events.map((e) => e.type)).toEqual(['connection.created', 'sync.completed', 'grant.revoked']);
    expect((await log()).every((m) => m.status === 'delivered')).toBe(true);

    // A replay arrives again with the same id: the handler de-duplicates it.
    const deliveriesBefore = receiver.deliveries;
    expect(await client.webhooks.replay(events[0]!.id)).toMatchObject({ id: events[0]!.id, status: 'pending' });
    await waitFor('the replayed delivery', () => Promise.resolve(receiver.deliveries > deliveriesBefore));
    expect(receiver.of(connectionId)).toHaveLength(3);
  }, 120_000);

  it("another application's messages and unknown ids are not found", async () => {
    const client = new ContextGateway({ baseUrl: stack.gatewayUrl, apiKey });
    const missing = await client.webhooks.replay('00000000-0000-4000-8000-000000000000').catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'not_found', status: 404 });
  });
});
