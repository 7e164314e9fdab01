import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { defaultListenBrainzToken, type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';

import { allowConnectSession } from '../support/connect-account.mjs';
import { adminClient, OPERATOR_TOKEN } from '../support/identity-admin.js';
import { connectSourceAccount, newPerson, waitForBrokerToKnowApp } from '../support/source-connection.js';
import { rootDir, startTestStack, type TestStack, waitFor } from '../support/test-stack.js';

// One record type, three sources: a person connects Spotify (OAuth), ListenBrainz (a pasted
// user token) and Netflix (an uploaded export) for one app, and the app reads
// `type=media.play_event` from each connection and gets one shape — the one
// docs/record-types.md publishes — whatever the source. ListenBrainz's whole history comes in
// with the INITIAL sync, and "sync now" brings only what was listened to since.
const CLIENT_ID = 'cg-e2e-spotify';
const CLIENT_SECRET = 'cg-e2e-spotify-secret-0123456789';
const CALLBACK = 'http://127.0.0.1:9/app-callback';
const SPOTIFY_SCOPES = [
  'spotify:read:profile',
  'spotify:read:playlists',
  'spotify:read:library',
  'spotify:read:recently_played',
];
const LISTENBRAINZ_SCOPES = ['listenbrainz:read:profile', 'listenbrainz:read:listens'];
const LISTENS = 1500;
const PLAYS = 40;
const NETFLIX_CSV =
  'Profile Name,Start Time,Duration,Attributes,Title,Supplemental Video Type,Device Type,Bookmark,Latest Bookmark,Country\r\n' +
  'Ana,2024-03-01 20:15:00,00:42:10,,Dark: Season 1: Secrets (Episode 1),,Chrome PC (Cadmium),00:42:10,00:42:10,DE (Germany)\r\n' +
  'Ana,2024-03-04 10:00:00,1:02:03,,"Movie, With Comma",,Phone,1:02:03,1:02:03,US (United States)\r\n';

let spotify: RunningSimulator;
let listenbrainz: RunningSimulator;
let stack: TestStack;
let nc: NatsConnection;
let client: RpcClient;
let key: string;
let app: { orgId: string; appId: string; name: string; callbackUrl: string };

interface Field {
  type: string;
  required: boolean;
}

/** media.play_event's fields as docs/record-types.md publishes them (the table generated from the catalog). */
function documentedPlayEvent(): Map<string, Field> {
  const doc = readFileSync(join(rootDir, 'docs/record-types.md'), 'utf8');
  const section = doc.split('\n## ').find((s) => s.startsWith('`media.play_event`'));
  if (!section) throw new Error('docs/record-types.md has no media.play_event section');
  const fields = new Map<string, Field>();
  for (const line of section.split('\n')) {
    const m = /^\| `([A-Za-z]+)` \| (.+?) \| (yes|no) \|/.exec(line);
    if (m) fields.set(m[1]!, { type: m[2]!, required: m[3] === 'yes' });
  }
  return fields;
}

/** Whether `value` is of a type as the docs' table names it. */
function ofType(value: unknown, type: string): boolean {
  if (type === 'string') return typeof value === 'string';
  if (type === 'integer') return Number.isInteger(value) && (value as number) >= 0;
  if (type === 'boolean') return typeof value === 'boolean';
  if (type === 'string[]') return Array.isArray(value) && value.every((v) => typeof v === 'string');
  if (type === 'ISO-8601 time') return typeof value === 'string' && !Number.isNaN(Date.parse(value));
  // An enum: `music` \| `podcast` \| ...
  const options = [...type.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
  return options.length > 0 && options.includes(value as string);
}

async function api<T>(
  method: string,
  path: string,
  init: { body?: string; contentType?: string } = {},
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${stack.gatewayUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(init.contentType ? { 'content-type': init.contentType } : {}) },
    ...(init.body !== undefined ? { body: init.body } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

/** Every live play event of a connection, through the public records API (all pages). */
async function playEvents(connectionId: string): Promise<Map<string, Record<string, unknown>>> {
  const out = new Map<string, Record<string, unknown>>();
  let cursor: string | null = null;
  do {
    const q: string = `type=media.play_event&limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const res = await api<{
      records: { externalId: string; deleted: boolean; data: Record<string, unknown> }[];
      nextCursor: string | null;
    }>('GET', `/v1/connections/${connectionId}/records?${q}`);
    if (res.status !== 200) throw new Error(`records: ${res.status} ${JSON.stringify(res.body)}`);
    for (const r of res.body.records) if (!r.deleted) out.set(r.externalId, r.data);
    cursor = res.body.nextCursor;
  } while (cursor);
  return out;
}

/** Waits for a sync of the connection that finished after `after` (epoch ms). */
function syncedAfter(connectionId: string, after: number) {
  return waitFor(
    'a finished sync',
    async () => {
      const s = (
        await api<{ state: string; lastSuccessAt: string | null; lastError: string | null; recordsSynced: number }>(
          'GET',
          `/v1/connections/${connectionId}/sync`,
        )
      ).body;
      return s.state === 'idle' && s.lastSuccessAt && Date.parse(s.lastSuccessAt) > after ? s : undefined;
    },
    90_000,
  );
}

beforeAll(async () => {
  spotify = await startSimulator({ provider: 'spotify' });
  listenbrainz = await startSimulator({ provider: 'listenbrainz' });
  stack = await startTestStack('play-events', {
    OPERATOR_TOKEN,
    INTEGRATION_ALLOW_INSECURE_HTTP: 'true',
    INTEGRATION_SPOTIFY_BASE_URL: spotify.url,
    INTEGRATION_SPOTIFY_CLIENT_ID: CLIENT_ID,
    INTEGRATION_SPOTIFY_CLIENT_SECRET: CLIENT_SECRET,
    // No client: ListenBrainz is reached with the person's pasted user token alone.
    INTEGRATION_LISTENBRAINZ_BASE_URL: listenbrainz.url,
    SYNC_INTERVAL_MS: '3600000',
  });
  const port = new URL(stack.gatewayUrl).port;
  await spotify.control.registerClient({
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [`http://localhost:${port}/v1/connect/callback`, `http://127.0.0.1:${port}/v1/connect/callback`],
    name: 'Context Gateway',
  });
  await spotify.control.createAccount({
    login: 'listener',
    counts: { playlists: 2, playlist_tracks: 5, tracks: 5, recently_played: PLAYS },
  });
  await listenbrainz.control.createAccount({ login: 'lena', counts: { listens: LISTENS } });

  const admin = adminClient(stack.gatewayUrl);
  const org = await admin.createOrganization('Plays Org');
  const integrations = ['spotify', 'listenbrainz', 'netflix'];
  expect(
    (await admin.call('PUT', `/v1/admin/organizations/${org.id}/policy/integrations`, { integrations })).status,
  ).toBe(200);
  const created = await admin.createApplication(org.id, {
    name: 'Listening Stats',
    callbackUrls: [CALLBACK],
    integrations,
    scopes: [...SPOTIFY_SCOPES, ...LISTENBRAINZ_SCOPES, 'netflix:read:history'],
  });
  key = (await admin.issueApiKey(created.id)).secret;
  app = { orgId: org.id, appId: created.id, name: 'Listening Stats', callbackUrl: CALLBACK };
  nc = await connect(stack.natsOptions());
  client = new RpcClient(nc);
  await waitForBrokerToKnowApp(client, app, 'listenbrainz', LISTENBRAINZ_SCOPES);
}, 240_000);

afterAll(async () => {
  await nc?.close();
  await stack?.stop();
  await spotify?.stop();
  await listenbrainz?.stop();
}, 60_000);

describe('media.play_event from Spotify, ListenBrainz and Netflix', () => {
  const connections: Record<'spotify' | 'listenbrainz' | 'netflix', string> = {
    spotify: '',
    listenbrainz: '',
    netflix: '',
  };

  /** Connect session → the person allows it (pasting `apiKey` where the source wants one) → the connection. */
  const connectWithoutSourceLogin = async (
    person: Awaited<ReturnType<typeof newPerson>>,
    integration: string,
    scopes: string[],
    apiKey?: string,
  ) => {
    const session = await client.request(rpc.broker.createConnectSession, {
      orgId: app.orgId,
      applicationId: app.appId,
      applicationName: app.name,
      integration,
      scopes,
      callbackUrl: app.callbackUrl,
    });
    const done = await allowConnectSession(client, session.sessionToken, person, apiKey ? { apiKey } : {});
    expect(done.connectionId).toMatch(/^[0-9a-f-]{36}$/);
    return done.connectionId;
  };

  it('one person connects all three; ListenBrainz with the user token from its settings page', async () => {
    const started = Date.now() - 1;
    const person = await newPerson(stack.gatewayUrl);
    ({ connectionId: connections.spotify } = await connectSourceAccount(
      client,
      app,
      'spotify',
      SPOTIFY_SCOPES,
      'listener',
      person,
    ));
    connections.listenbrainz = await connectWithoutSourceLogin(
      person,
      'listenbrainz',
      LISTENBRAINZ_SCOPES,
      defaultListenBrainzToken('listenbrainz:lena'),
    );
    connections.netflix = await connectWithoutSourceLogin(person, 'netflix', ['netflix:read:history']);
    const upload = await api<{ imported: number; rejectedTotal: number }>(
      'POST',
      `/v1/connections/${connections.netflix}/imports`,
      { body: NETFLIX_CSV, contentType: 'text/csv' },
    );
    expect(upload.status).toBe(200);
    expect(upload.body).toMatchObject({ imported: 2, rejectedTotal: 0 });

    const lb = await syncedAfter(connections.listenbrainz, started);
    expect(lb).toMatchObject({ lastError: null, recordsSynced: 1 + LISTENS });
    expect((await syncedAfter(connections.spotify, started)).lastError).toBeNull();
  }, 180_000);

  it('each connection answers type=media.play_event in the one documented shape', async () => {
    const documented = documentedPlayEvent();
    const required = [...documented].filter(([, f]) => f.required).map(([name]) => name);
    expect(required).toEqual(expect.arrayContaining(['source', 'trackId', 'title', 'kind', 'playedAt']));
    const bySource = {
      spotify: await playEvents(connections.spotify),
      listenbrainz: await playEvents(connections.listenbrainz),
      netflix: await playEvents(connections.netflix),
    };
    expect(bySource.spotify.size).toBe(PLAYS);
    expect(bySource.listenbrainz.size).toBe(LISTENS);
    expect(bySource.netflix.size).toBe(2);
    for (const [source, plays] of Object.entries(bySource)) {
      for (const data of plays.values()) {
        expect(data.source).toBe(source);
        for (const name of required) expect(data).toHaveProperty(name);
        for (const [name, value] of Object.entries(data)) {
          const field = documented.get(name);
          if (!field || !ofType(value, field.type))
            throw new Error(`${source}: ${name}=${JSON.stringify(value)} is not in the documented shape`);
        }
      }
    }
    // The same question gets the same kind of answer: a ListenBrainz listen and a Spotify play
    // of music agree on what is always there, and a listen adds only documented detail.
    const aPlay = [...bySource.spotify.values()].find((d) => d.kind === 'music')!;
    const aListen = [...bySource.listenbrainz.values()][0]!;
    const always = (d: Record<string, unknown>) => required.filter((k) => k in d).sort();
    expect(always(aListen)).toEqual(always(aPlay));
    expect(aListen.kind).toBe('music');
    const listenKeys = new Set([...bySource.listenbrainz.values()].flatMap((d) => Object.keys(d)));
    expect([...listenKeys]).toEqual(expect.arrayContaining(['collection', 'itemDurationMs', 'creatorIds', 'isrc']));
  }, 60_000);

  it('"sync now" brings only the listens since the last run', async () => {
    const added = await listenbrainz.control.addItem<{ listened_at: number; recording_msid: string }>(
      'lena',
      'listens',
      {},
    );
    const before = Date.now() - 1;
    const written = await syncedAfter(connections.listenbrainz, 0);
    expect((await api('POST', `/v1/connections/${connections.listenbrainz}/sync`)).status).toBe(202);
    const state = await syncedAfter(connections.listenbrainz, before);
    expect(state.lastError).toBeNull();
    // The one new listen (and the profile, unchanged), not the history again.
    expect(state.recordsSynced - written.recordsSynced).toBeGreaterThanOrEqual(1);
    expect(state.recordsSynced - written.recordsSynced).toBeLessThanOrEqual(2);
    const plays = await playEvents(connections.listenbrainz);
    expect(plays.size).toBe(LISTENS + 1);
    expect(plays.get(`${added.listened_at}:${added.recording_msid}`)).toMatchObject({
      source: 'listenbrainz',
      kind: 'music',
      playedAt: new Date(added.listened_at * 1000).toISOString(),
    });
  }, 120_000);
});
