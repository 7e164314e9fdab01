import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';

import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { JetStreamPublisher, RpcClient } from '@context-gateway/messaging';
import { ConnectionStatus, events, rpc, SyncReason } from '@context-gateway/proto';
import { type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';

import { adminClient, OPERATOR_TOKEN } from '../support/identity-admin.js';
import { connectSourceAccount, newPerson, waitForBrokerToKnowApp } from '../support/source-connection.js';
import { freePort, rootDir, startTestStack, type TestStack, waitFor } from '../support/test-stack.js';

// GitHub, synced by the sync-worker into a Personal Server and read back by an app through
// the public API: the INITIAL full sync over many pages, incremental syncs that pick up
// adds, edits and deletes (tombstones), a webhook making a change queryable, a token that
// expires mid-sync, a rate-limit storm, and a worker killed mid-job whose job another
// worker finishes with the same records.
const CLIENT_ID = 'cg-e2e-github';
const CLIENT_SECRET = 'cg-e2e-github-secret-0123456789';
const WEBHOOK_SECRET = 'e2e-github-webhook-secret-0123456789';
const SCOPES = ['github:read:profile', 'github:read:repos', 'github:read:stars', 'github:read:issues'];
const CALLBACK = 'http://127.0.0.1:9/app-callback';
/** Short enough that a killed worker's job comes back within seconds. */
const WORKER_ENV = {
  SYNC_JOB_ACK_WAIT_MS: '4000',
  SYNC_LEASE_MS: '3000',
  SYNC_RETRY_BASE_MS: '200',
  SYNC_RETRY_MAX_MS: '2000',
  SYNC_INTERVAL_MS: '3600000',
};

let sim: RunningSimulator;
let spotify: RunningSimulator;
const SPOTIFY_SCOPES = [
  'spotify:read:profile',
  'spotify:read:playlists',
  'spotify:read:library',
  'spotify:read:recently_played',
];
let stack: TestStack;
let nc: NatsConnection;
let client: RpcClient;
let key: string;
let app: { orgId: string; appId: string; name: string; callbackUrl: string };
const extraWorkers: ChildProcess[] = [];

interface SyncState {
  state: string;
  lastSuccessAt: string | null;
  lastError: string | null;
  recordsSynced: number;
  nextRunAt: string | null;
  lastRunSkipped: { kind: string; resource: string; reason: string }[];
  lastRunSkippedTotal: number;
}

async function api<T>(
  method: string,
  path: string,
  init: { body?: string; contentType?: string; apiKey?: string } = {},
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${stack.gatewayUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${init.apiKey ?? key}`,
      ...(init.contentType ? { 'content-type': init.contentType } : {}),
    },
    ...(init.body !== undefined ? { body: init.body } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

const syncState = async (connectionId: string) =>
  (await api<SyncState>('GET', `/v1/connections/${connectionId}/sync`)).body;

/** Every live record of a type, through the public records API (all pages); fails on a duplicate. */
async function records(connectionId: string, type: string): Promise<Map<string, Record<string, unknown>>> {
  const out = new Map<string, Record<string, unknown>>();
  const seen = new Set<string>();
  let cursor: string | null = null;
  do {
    const q: string = `type=${type}&limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const res = await api<{
      records: { externalId: string; deleted: boolean; data: Record<string, unknown> }[];
      nextCursor: string | null;
    }>('GET', `/v1/connections/${connectionId}/records?${q}`);
    if (res.status !== 200) throw new Error(`records: ${res.status} ${JSON.stringify(res.body)}`);
    for (const r of res.body.records) {
      if (seen.has(r.externalId)) throw new Error(`duplicate record ${type}/${r.externalId}`);
      seen.add(r.externalId);
      if (!r.deleted) out.set(r.externalId, r.data);
    }
    cursor = res.body.nextCursor;
  } while (cursor);
  return out;
}

/** Waits until a run that finished after `after` shows in the sync state. */
async function syncedAfter(connectionId: string, after: number, timeoutMs = 60_000): Promise<SyncState> {
  return waitFor(
    'a finished sync',
    async () => {
      const s = await syncState(connectionId);
      return s.state === 'idle' && s.lastSuccessAt && Date.parse(s.lastSuccessAt) > after ? s : undefined;
    },
    timeoutMs,
  );
}

beforeAll(async () => {
  sim = await startSimulator({ provider: 'github' });
  spotify = await startSimulator({ provider: 'spotify' });
  stack = await startTestStack('sync', {
    OPERATOR_TOKEN,
    INTEGRATION_ALLOW_INSECURE_HTTP: 'true',
    INTEGRATION_GITHUB_BASE_URL: sim.url,
    INTEGRATION_GITHUB_CLIENT_ID: CLIENT_ID,
    INTEGRATION_GITHUB_CLIENT_SECRET: CLIENT_SECRET,
    GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET,
    INTEGRATION_SPOTIFY_BASE_URL: spotify.url,
    INTEGRATION_SPOTIFY_CLIENT_ID: CLIENT_ID,
    INTEGRATION_SPOTIFY_CLIENT_SECRET: CLIENT_SECRET,
    ...WORKER_ENV,
  });
  const port = new URL(stack.gatewayUrl).port;
  await sim.control.registerClient({
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [`http://localhost:${port}/v1/connect/callback`, `http://127.0.0.1:${port}/v1/connect/callback`],
    name: 'Context Gateway',
  });
  await spotify.control.registerClient({
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [`http://localhost:${port}/v1/connect/callback`, `http://127.0.0.1:${port}/v1/connect/callback`],
    name: 'Context Gateway',
  });
  await spotify.control.createAccount({
    login: 'listener',
    counts: { playlists: 12, playlist_tracks: 60, tracks: 80, recently_played: 70 },
  });
  await sim.control.configureWebhook({ url: `${stack.gatewayUrl}/v1/webhooks/github`, secret: WEBHOOK_SECRET });
  await sim.control.createAccount({ login: 'octo-sync', counts: { repos: 230, starred: 120, issues: 25 } });
  await sim.control.createAccount({ login: 'octo-bulk', counts: { repos: 1500, starred: 10, issues: 5 } });
  await sim.control.createAccount({ login: 'octo-gone', counts: { repos: 20, starred: 2, issues: 1 } });

  const admin = adminClient(stack.gatewayUrl);
  const org = await admin.createOrganization('Sync Org');
  // The org layer of policy allows GitHub (secure default: nothing).
  expect(
    (
      await admin.call('PUT', `/v1/admin/organizations/${org.id}/policy/integrations`, {
        integrations: ['github', 'spotify'],
      })
    ).status,
  ).toBe(200);
  const created = await admin.createApplication(org.id, {
    name: 'Sync App',
    callbackUrls: [CALLBACK],
    integrations: ['github', 'spotify'],
    scopes: [...SCOPES, ...SPOTIFY_SCOPES],
  });
  key = (await admin.issueApiKey(created.id)).secret;
  app = { orgId: org.id, appId: created.id, name: 'Sync App', callbackUrl: CALLBACK };
  nc = await connect(stack.natsOptions());
  client = new RpcClient(nc);
  await waitForBrokerToKnowApp(client, app, 'github', SCOPES);
}, 180_000);

afterAll(async () => {
  for (const w of extraWorkers) w.kill('SIGKILL');
  await nc?.close();
  await stack?.stop();
  await sim?.stop();
  await spotify?.stop();
}, 60_000);

describe('sync: GitHub into the Personal Server', () => {
  let connectionId: string;

  it('the first sync (INITIAL, queued by the broker) walks every page into the Personal Server', async () => {
    const started = Date.now() - 1;
    ({ connectionId } = await connectSourceAccount(
      client,
      app,
      'github',
      SCOPES,
      'octo-sync',
      await newPerson(stack.gatewayUrl),
    ));
    const state = await syncedAfter(connectionId, started);
    expect(state).toMatchObject({ state: 'idle', lastError: null });
    expect(state.recordsSynced).toBe(1 + 230 + 120 + 25);
    expect(Date.parse(state.nextRunAt!)).toBeGreaterThan(Date.now() + 30 * 60_000);
    expect((await records(connectionId, 'code.repository')).size).toBe(230);
    expect((await records(connectionId, 'code.star')).size).toBe(120);
    expect((await records(connectionId, 'code.issue')).size).toBe(25);
  }, 90_000);

  it('sync now: an incremental sync picks up adds, edits and deletes; deletes become tombstones', async () => {
    const repos = (await sim.control.list<{ id: number }>('octo-sync', 'repos')).items;
    const added = await sim.control.addItem<{ id: number }>('octo-sync', 'repos', {
      name: 'added-later',
      description: 'new at the source',
    });
    await sim.control.updateItem('octo-sync', 'repos', repos[7]!.id, { description: 'edited at the source' });
    await sim.control.deleteItem('octo-sync', 'repos', repos[100]!.id);
    const before = (await syncState(connectionId)).recordsSynced;

    const t0 = Date.now();
    const res = await api<{ jobId: string; state: string }>('POST', `/v1/connections/${connectionId}/sync`);
    expect(res.status).toBe(202);
    expect(res.body.state).toBe('queued');
    const state = await syncedAfter(connectionId, t0);
    let live = await records(connectionId, 'code.repository');
    expect(live.get(String(added.id))).toMatchObject({ description: 'new at the source' });
    expect(live.get(String(repos[7]!.id))).toMatchObject({ description: 'edited at the source' });
    // Only what changed was written: a new one, an edited one (and whatever the edit shifted).
    expect(state.recordsSynced - before).toBeGreaterThanOrEqual(2);
    expect(state.recordsSynced - before).toBeLessThan(230);
    // Missed by one listing is not yet a deletion (the listing can shift under the reader): a
    // run that misses it again tombstones it. (The deletion's webhook may already have run one.)
    const t1 = Date.now();
    expect((await api('POST', `/v1/connections/${connectionId}/sync`)).status).toBe(202);
    await syncedAfter(connectionId, t1);
    live = await records(connectionId, 'code.repository');
    expect(live.size).toBe(230);
    expect(live.has(String(repos[100]!.id))).toBe(false);
    // The tombstone is visible to an app following changes with `since`.
    const changes = await api<{ records: { externalId: string; deleted: boolean }[] }>(
      'GET',
      `/v1/connections/${connectionId}/records?type=code.repository&since=${new Date(t0 - 1000).toISOString()}&limit=500`,
    );
    expect(changes.body.records.find((r) => r.externalId === String(repos[100]!.id))).toMatchObject({ deleted: true });
  }, 90_000);

  it('a webhook from the source makes a change queryable without waiting for the schedule', async () => {
    const repos = (await sim.control.list<{ id: number }>('octo-sync', 'repos')).items;
    const target = repos[3]!;
    await sim.control.updateItem('octo-sync', 'repos', target.id, {
      description: 'changed, then announced by webhook',
    });
    const seen = await waitFor(
      'the webhook-triggered sync',
      async () =>
        (await records(connectionId, 'code.repository')).get(String(target.id))?.description ===
        'changed, then announced by webhook'
          ? true
          : undefined,
      15_000,
    );
    expect(seen).toBe(true);
    const deliveries = await sim.control.webhookDeliveries();
    expect(deliveries.some((d) => d.status === 202)).toBe(true);
  }, 30_000);

  it('refuses a webhook whose signature does not match, and queues nothing', async () => {
    const body = JSON.stringify({ action: 'edited', sender: { id: 1 } });
    const res = await fetch(`${stack.gatewayUrl}/v1/webhooks/github`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'repository',
        'x-github-delivery': 'd-1',
        'x-hub-signature-256': `sha256=${'0'.repeat(64)}`,
      },
      body,
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { code: string }).code).toBe('webhook_signature_invalid');
  });

  it('a token that expires in the middle of a sync is refreshed through the broker and the job finishes', async () => {
    await sim.control.resetCounters();
    await sim.control.updateItem(
      'octo-sync',
      'repos',
      (await sim.control.list<{ id: number }>('octo-sync', 'repos')).items[0]!.id,
      { description: 'after expiry' },
    );
    await sim.control.expireTokens(false);
    const t0 = Date.now();
    await api('POST', `/v1/connections/${connectionId}/sync`);
    const state = await syncedAfter(connectionId, t0);
    expect(state.lastError).toBeNull();
    const counters = await sim.control.counters();
    expect(counters.unauthorized).toBeGreaterThan(0);
    expect(counters.tokensRefreshed).toBeGreaterThanOrEqual(1);
    expect(
      [...(await records(connectionId, 'code.repository')).values()].some((r) => r.description === 'after expiry'),
    ).toBe(true);
  }, 60_000);

  it('survives a rate-limit storm (Retry-After) and still syncs the change', async () => {
    const target = (await sim.control.list<{ id: number }>('octo-sync', 'repos')).items[1]!;
    await sim.control.updateItem('octo-sync', 'repos', target.id, { description: 'during the storm' });
    await sim.control.startStorm({
      everyNth: 2,
      retryAfterSeconds: 1,
      status: 429,
      kind: 'secondary',
      durationSeconds: 6,
    });
    const t0 = Date.now();
    await api('POST', `/v1/connections/${connectionId}/sync`);
    const state = await syncedAfter(connectionId, t0);
    await sim.control.stopStorm();
    expect(state.lastError).toBeNull();
    expect((await sim.control.counters()).throttled).toBeGreaterThan(0);
    expect((await records(connectionId, 'code.repository')).get(String(target.id))).toMatchObject({
      description: 'during the storm',
    });
  }, 60_000);

  it('a job that keeps failing ends up visibly failed after its bounded retries, and the next sync recovers', async () => {
    // The source asks for a wait longer than a worker will hold a job for: every delivery fails with rate_limited.
    await sim.control.startStorm({ retryAfterSeconds: 3600, status: 429, kind: 'secondary' });
    await api('POST', `/v1/connections/${connectionId}/sync`);
    const failed = await waitFor(
      'the failed state',
      async () => {
        const s = await syncState(connectionId);
        return s.state === 'failed' ? s : undefined;
      },
      60_000,
    );
    expect(failed.lastError).toMatch(/^rate_limited/);
    await sim.control.stopStorm();
    const t0 = Date.now();
    await api('POST', `/v1/connections/${connectionId}/sync`);
    expect(await syncedAfter(connectionId, t0)).toMatchObject({ state: 'idle', lastError: null });
  }, 90_000);

  it('another app (no grant on the connection) gets 404 for its sync status, sync now and imports', async () => {
    const admin = adminClient(stack.gatewayUrl);
    const other = await admin.createApplication(app.orgId, {
      name: 'Other',
      callbackUrls: [CALLBACK],
      integrations: ['github'],
      scopes: SCOPES,
    });
    const otherKey = (await admin.issueApiKey(other.id)).secret;
    for (const [method, path] of [
      ['GET', 'sync'],
      ['POST', 'sync'],
      ['POST', 'imports'],
    ] as const) {
      const res = await api<{ code: string }>(method, `/v1/connections/${connectionId}/${path}`, {
        apiKey: otherKey,
        ...(path === 'imports' ? { body: 'x', contentType: 'text/csv' } : {}),
      });
      expect(res.status).toBe(404);
      expect(res.body.code).toBe('connection_not_found');
    }
  });

  it('a deleted connection is dropped by the sync-worker at its next job: no failure, nothing scheduled again', async () => {
    const t0 = Date.now();
    const person = await newPerson(stack.gatewayUrl);
    const { connectionId: gone } = await connectSourceAccount(client, app, 'github', SCOPES, 'octo-gone', person);
    await syncedAfter(gone, t0);
    await client.request(rpc.broker.removeConnection, { connectionId: gone, personSessionToken: person.sessionToken });
    expect((await api<{ code: string }>('GET', `/v1/connections/${gone}/sync`)).body.code).toBe('connection_not_found');
    // The job the scheduler would have queued at the connection's next interval.
    await new JetStreamPublisher(nc).publish(events.syncJobRequested, {
      jobId: randomUUID(),
      connectionId: gone,
      reason: SyncReason.SCHEDULED,
      requestedAt: timestampFromDate(new Date()),
    });
    const db = new pg.Client({ connectionString: stack.databaseUrl });
    await db.connect();
    try {
      await waitFor(
        'the sync state to be dropped',
        async () =>
          (await db.query('SELECT 1 FROM sync_worker.sync_states WHERE connection_id = $1', [gone])).rowCount === 0 ||
          undefined,
        30_000,
      );
    } finally {
      await db.end();
    }
  }, 60_000);

  it('a worker killed in the middle of a job: another worker finishes it, with the same records and no duplicates', async () => {
    // A second worker joins the same durable consumer.
    const port = await freePort();
    const worker = spawn(process.execPath, [stack.serviceEntries['sync-worker']!], {
      cwd: rootDir,
      env: {
        ...process.env,
        DATABASE_URL: stack.databaseUrl,
        NATS_URL: stack.natsUrl,
        NATS_NKEY_SEED_FILE: stack.natsSeedFiles['sync-worker'],
        HTTP_PORT: String(port),
        LOG_LEVEL: 'info',
        ...WORKER_ENV,
      },
      stdio: 'ignore',
    });
    extraWorkers.push(worker);
    await waitFor(
      'the second worker',
      async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok || undefined,
      60_000,
    );
    // Slow the source down so the job is surely in the middle when a worker dies.
    await sim.control.startStorm({
      everyNth: 2,
      retryAfterSeconds: 1,
      status: 429,
      kind: 'secondary',
      durationSeconds: 20,
    });
    const t0 = Date.now();
    const { connectionId: bulk } = await connectSourceAccount(
      client,
      app,
      'github',
      SCOPES,
      'octo-bulk',
      await newPerson(stack.gatewayUrl),
    );
    // The worker holding the job dies as soon as the first records are in. Which one holds
    // it is in its lease (owner = host:pid:nonce), read from the sync-worker's own table.
    await waitFor(
      'the first records',
      async () => (await records(bulk, 'code.repository')).size > 0 || undefined,
      30_000,
    );
    const db = new pg.Client({ connectionString: stack.databaseUrl });
    await db.connect();
    const { rows } = await db
      .query<{ lease_owner: string | null }>(
        'SELECT lease_owner FROM sync_worker.sync_states WHERE connection_id = $1',
        [bulk],
      )
      .finally(() => db.end());
    const holder = Number(rows[0]?.lease_owner?.split(':')[1]);
    expect([stack.pids()['sync-worker'], worker.pid]).toContain(holder);
    process.kill(holder, 'SIGKILL');
    expect((await records(bulk, 'code.repository')).size).toBeLessThan(1500);
    const state = await syncedAfter(bulk, t0, 90_000);
    await sim.control.stopStorm();
    const repos = await records(bulk, 'code.repository');
    expect(repos.size).toBe(1500);
    expect(state.recordsSynced).toBe(1 + 1500 + 10 + 5);
    expect(state.lastError).toBeNull();
  }, 150_000);
});

describe('sync: Spotify into the Personal Server', () => {
  let connectionId: string;

  it('the first sync brings profile, playlists with their items and saved tracks', async () => {
    const t0 = Date.now();
    ({ connectionId } = await connectSourceAccount(
      client,
      app,
      'spotify',
      SPOTIFY_SCOPES,
      'listener',
      await newPerson(stack.gatewayUrl),
    ));
    const state = await syncedAfter(connectionId, t0);
    expect(state.lastError).toBeNull();
    // profile + 12 playlists + 12 × 60 items + 80 saved tracks + 70 plays
    expect(state.recordsSynced).toBe(1 + 12 + 12 * 60 + 80 + 70);
    expect((await records(connectionId, 'media.playlist')).size).toBe(12);
    expect((await records(connectionId, 'media.playlist_item')).size).toBe(12 * 60);
    expect((await records(connectionId, 'media.track')).size).toBe(80);
  }, 60_000);

  it('one playlist answering 403 and one null list entry are reported as exactly those two skips; the rest is stored', async () => {
    await spotify.control.createAccount({
      login: 'follower',
      counts: { playlists: 5, playlist_tracks: 7, tracks: 9, recently_played: 11 },
    });
    const playlists = (await spotify.control.list<{ id: string }>('follower', 'playlists')).items;
    const refused = playlists[1]!.id;
    await spotify.control.setQuirks('follower', { forbiddenPlaylists: [refused], nullPlaylistEntries: [2] });
    const t0 = Date.now();
    const { connectionId: followed } = await connectSourceAccount(
      client,
      app,
      'spotify',
      SPOTIFY_SCOPES,
      'follower',
      await newPerson(stack.gatewayUrl),
    );
    const state = await syncedAfter(followed, t0);
    expect(state.lastError).toBeNull();
    expect(state.lastRunSkippedTotal).toBe(2);
    expect(state.lastRunSkipped).toEqual(
      expect.arrayContaining([
        { kind: 'forbidden', resource: `/playlists/${refused}/items`, reason: expect.any(String) },
        { kind: 'malformed', resource: expect.stringContaining('/me/playlists[2]'), reason: 'the source listed null' },
      ]),
    );
    // The source lists a null among the 5 playlists: all 5 stored; every playlist's items but the refused one's.
    expect((await records(followed, 'media.playlist')).size).toBe(5);
    const items = await records(followed, 'media.playlist_item');
    expect(items.size).toBe(4 * 7);
    expect([...items.values()].some((i) => i.playlistId === refused)).toBe(false);
    expect((await records(followed, 'media.track')).size).toBe(9);
    expect((await records(followed, 'media.play_event')).size).toBe(11);
  }, 60_000);

  it('a refresh token the source refuses (invalid_grant) marks the connection needs_reauth and stops syncing it', async () => {
    await spotify.control.expireTokens(true);
    expect((await api('POST', `/v1/connections/${connectionId}/sync`)).status).toBe(202);
    const state = await waitFor(
      'needs_reauth',
      async () => {
        const s = await syncState(connectionId);
        return s.state === 'needs_reauth' ? s : undefined;
      },
      30_000,
    );
    expect(state.lastError).toMatch(/^connection_needs_reauth/);
    const { connection } = await client.request(rpc.broker.getConnection, {
      orgId: app.orgId,
      applicationId: app.appId,
      connectionId,
    });
    expect(connection?.status).toBe(ConnectionStatus.NEEDS_REAUTH);
  }, 60_000);
});
