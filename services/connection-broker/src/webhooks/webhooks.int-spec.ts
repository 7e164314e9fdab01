import { createHmac, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { TestClock } from '@context-gateway/clock/testing';
import { createPrismaAdapter } from '@context-gateway/database';
import { createTestSchema, type TestSchema } from '@context-gateway/database/testing';
import { createLogger } from '@context-gateway/observability';
import { Metrics } from '@context-gateway/service-kit';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';

import { type Env, loadEnv } from '../env.js';
import { PrismaClient } from '../generated/prisma/client.js';
import { CredentialVault } from '../vault/credential-vault.js';
import { WebhookDeliveryRelay } from './webhook-delivery.relay.js';
import { WebhookOutbox } from './webhook-outbox.js';
import { deliver } from './webhook-sender.js';
import { WebhooksMetrics } from './webhooks.metrics.js';
import { WebhooksRepository } from './webhooks.repository.js';
import { WebhooksService } from './webhooks.service.js';

// The webhook queue against a real schema (broker migrations), real key files for the signing
// secrets and a real HTTP receiver: signatures per Standard Webhooks, retries with backoff,
// order per connection, give-up, replay, rotation with two signatures, and the address guard.
const migrationsDir = fileURLToPath(new URL('../../prisma/migrations', import.meta.url));
const logger = createLogger({ service: 'broker-webhooks-test', level: 'silent' });
const clock = new TestClock();
const ORG = randomUUID();

let db: TestSchema;
let prisma: PrismaClient;
let dir: string;
let vault: CredentialVault;
let env: Env;
let repo: WebhooksRepository;
let outbox: WebhookOutbox;
let service: WebhooksService;
let relay: WebhookDeliveryRelay;
let receiver: Server;
let receiverUrl: string;

interface Received {
  id: string;
  timestamp: string;
  signatures: string[];
  body: string;
}
const received: Received[] = [];
/** What the receiver answers next (a queue of statuses; 204 once empty). */
const answers: number[] = [];

function verifies(secret: string, r: Received): boolean {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const expected = `v1,${createHmac('sha256', key).update(`${r.id}.${r.timestamp}.${r.body}`).digest('base64')}`;
  return r.signatures.includes(expected);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'broker-webhooks-'));
  db = await createTestSchema({ prefix: 'broker_webhooks', migrationsDir });
  prisma = new PrismaClient({ adapter: createPrismaAdapter(db.pool, db.schema) });
  env = loadEnv({
    DATABASE_URL: db.url,
    MASTER_KEY_FILE: join(dir, 'master.key'),
    WEBHOOK_ALLOW_HTTP: 'true',
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
    WEBHOOK_RETRY_BASE_MS: '1000',
    WEBHOOK_MAX_ATTEMPTS: '3',
    WEBHOOK_TIMEOUT_MS: '2000',
  });
  vault = await CredentialVault.open(env, () => Promise.resolve(0));
  repo = new WebhooksRepository(prisma);
  outbox = new WebhookOutbox(clock);
  service = new WebhooksService(repo, vault, clock, env);
  const metrics = new WebhooksMetrics(new Metrics({ service: 'connection-broker', version: 'test' }), repo, clock);
  relay = new WebhookDeliveryRelay(repo, vault, metrics, clock, env, logger);
  receiver = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({
        id: String(req.headers['webhook-id']),
        timestamp: String(req.headers['webhook-timestamp']),
        signatures: String(req.headers['webhook-signature']).split(' '),
        body: Buffer.concat(chunks).toString('utf8'),
      });
      res.writeHead(answers.shift() ?? 204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
});

afterAll(async () => {
  receiver?.close();
  vault?.close();
  await prisma?.$disconnect();
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  received.length = 0;
  answers.length = 0;
});

const queue = (applicationId: string, connectionId: string, type: 'sync.completed' | 'grant.revoked', n: number) =>
  prisma.$transaction((tx) =>
    outbox.enqueue(tx, { applicationId, orgId: ORG, connectionId, type, data: { integration: 'demo', n } }),
  );

describe('webhooks to applications', () => {
  it('a configured endpoint gets each event signed, once; the secret is shown once and stored wrapped', async () => {
    const app = randomUUID();
    const { secret } = await service.configure(ORG, app, receiverUrl);
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const again = await service.configure(ORG, app, receiverUrl);
    expect(again).not.toHaveProperty('secret');
    const row = await prisma.webhookEndpoint.findUniqueOrThrow({ where: { applicationId: app } });
    expect(Buffer.from(row.secretWrapped).includes(Buffer.from(secret!.slice(6), 'base64'))).toBe(false);

    const connection = randomUUID();
    const id = await queue(app, connection, 'sync.completed', 1);
    expect(await relay.deliverDue()).toBe(1);
    expect(received).toHaveLength(1);
    expect(received[0]!.id).toBe(id);
    expect(verifies(secret!, received[0]!)).toBe(true);
    expect(JSON.parse(received[0]!.body)).toMatchObject({
      type: 'sync.completed',
      data: { connectionId: connection, integration: 'demo', n: 1 },
    });
    expect(await relay.deliverDue()).toBe(0);
    const listed = await service.list(ORG, app, 10, '');
    expect(listed.messages[0]).toMatchObject({ id, status: 'delivered', attempts: 1, lastStatus: 204 });
  });

  it('an application without an endpoint, or of another organization, gets nothing queued', async () => {
    expect(await queue(randomUUID(), randomUUID(), 'sync.completed', 1)).toBeUndefined();
    const app = randomUUID();
    await service.configure(ORG, app, receiverUrl);
    await expect(
      prisma.$transaction((tx) =>
        outbox.enqueue(tx, {
          applicationId: app,
          orgId: randomUUID(),
          connectionId: randomUUID(),
          type: 'sync.failed',
          data: {},
        }),
      ),
    ).resolves.toBeUndefined();
    await expect(service.describe(randomUUID(), app)).rejects.toMatchObject({ code: 'not_found' });
  });

  it("a failed attempt is retried after a backoff, and one connection's events stay in order", async () => {
    const app = randomUUID();
    await service.configure(ORG, app, receiverUrl);
    const connection = randomUUID();
    const first = await queue(app, connection, 'sync.completed', 1);
    const second = await queue(app, connection, 'grant.revoked', 2);
    const other = await queue(app, randomUUID(), 'sync.completed', 3);
    answers.push(503);
    // The first of the connection fails; the second must wait for it. The other connection goes.
    expect(await relay.deliverDue()).toBe(2);
    expect(received.map((r) => r.id).sort()).toEqual([first, other].sort());
    expect(await relay.deliverDue()).toBe(0);
    const failed = (await service.list(ORG, app, 10, '')).messages.find((m) => m.id === first)!;
    expect(failed).toMatchObject({ status: 'pending', attempts: 1, lastStatus: 503, lastError: 'http_503' });
    clock.advance(2_000);
    received.length = 0;
    expect(await relay.deliverDue()).toBe(1);
    expect(received.map((r) => r.id)).toEqual([first]);
    expect(await relay.deliverDue()).toBe(1);
    expect(received.map((r) => r.id)).toEqual([first, second]);
  });

  it('gives up after the last attempt; a replay sends it again with the same id', async () => {
    const app = randomUUID();
    await service.configure(ORG, app, receiverUrl);
    const id = (await queue(app, randomUUID(), 'sync.completed', 1))!;
    answers.push(500, 500, 500);
    for (let i = 0; i < 3; i++) {
      expect(await relay.deliverDue()).toBe(1);
      clock.advance(10_000);
    }
    expect(await relay.deliverDue()).toBe(0);
    const [given] = (await service.list(ORG, app, 10, '')).messages;
    expect(given).toMatchObject({ id, status: 'failed', attempts: 3, lastError: 'http_500' });
    expect((await service.replay(ORG, app, id)).message).toMatchObject({ id, status: 'pending', attempts: 0 });
    expect(await relay.deliverDue()).toBe(1);
    expect(received.at(-1)!.id).toBe(id);
    await expect(service.replay(ORG, app, randomUUID())).rejects.toMatchObject({ code: 'not_found' });
  });

  it('a rotation signs with both secrets during the overlap, then with the new one only', async () => {
    const app = randomUUID();
    const { secret: oldSecret } = await service.configure(ORG, app, receiverUrl);
    const { secret: newSecret } = await service.rotate(ORG, app, 3600);
    await queue(app, randomUUID(), 'sync.completed', 1);
    await relay.deliverDue();
    expect(received[0]!.signatures).toHaveLength(2);
    expect(verifies(oldSecret!, received[0]!) && verifies(newSecret, received[0]!)).toBe(true);
    clock.advance(3_601_000);
    await queue(app, randomUUID(), 'sync.completed', 2);
    await relay.deliverDue();
    expect(received[1]!.signatures).toHaveLength(1);
    expect(verifies(newSecret, received[1]!)).toBe(true);
    expect(verifies(oldSecret!, received[1]!)).toBe(false);
  });

  it('pages the delivery log newest first with a cursor', async () => {
    const app = randomUUID();
    await service.configure(ORG, app, receiverUrl);
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await queue(app, randomUUID(), 'sync.completed', i));
    const first = await service.list(ORG, app, 3, '');
    expect(first.messages.map((m) => m.id)).toEqual(ids.slice(2).reverse());
    const second = await service.list(ORG, app, 3, first.nextCursor);
    expect(second.messages.map((m) => m.id)).toEqual(ids.slice(0, 2).reverse());
    expect(second.nextCursor).toBe('');
    await expect(service.list(ORG, app, 3, 'nope')).rejects.toMatchObject({ code: 'validation_failed' });
  });
});

describe('the address guard', () => {
  const strict = { allowHttp: false, allowPrivateNetworks: false };

  it('refuses non-https, credentials and non-public literal addresses when configured', async () => {
    const strictService = new WebhooksService(repo, vault, clock, {
      ...env,
      WEBHOOK_ALLOW_HTTP: false,
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: false,
    });
    for (const url of [
      'http://hooks.example.com/x',
      'https://user:pw@hooks.example.com/x',
      'https://127.0.0.1/x',
      'https://10.1.2.3/x',
      'https://169.254.169.254/latest/meta-data',
      'https://[::1]/x',
      'https://[::ffff:127.0.0.1]/x',
      'not a url',
    ])
      await expect(strictService.configure(ORG, randomUUID(), url)).rejects.toMatchObject({
        code: 'validation_failed',
      });
  });

  it('never connects to a name that resolves to a loopback address', async () => {
    const body = Buffer.from('{}');
    const byName = await deliver(new URL(receiverUrl.replace('127.0.0.1', 'localhost')), {}, body, {
      timeoutMs: 2000,
      policy: { ...strict, allowHttp: true },
    });
    expect(byName).toEqual({ status: 0, error: 'address_refused' });
    const byLiteral = await deliver(new URL(receiverUrl), {}, body, {
      timeoutMs: 2000,
      policy: { ...strict, allowHttp: true },
    });
    expect(byLiteral).toEqual({ status: 0, error: 'address_refused' });
    expect(received).toHaveLength(0);
  });
});
