import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  allRpcDescriptors,
  consumers,
  deadLetterSubject,
  events,
  SERVICE_NAMES,
  type ServiceName,
  streams,
} from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { createUser } from '@nats-io/nkeys';
import { connect, errors, type NatsConnection, nkeyAuthenticator } from '@nats-io/transport-node';
import { pino } from 'pino';

import { provisionJetStream } from './jetstream-streams.js';
import { connectNats, NatsAuthError, type NatsConnectOptions } from './nats-connection.js';
import {
  layOutNatsCredentials,
  NATS_AUTH_CONFIG_FILE,
  NATS_SERVER_CREDENTIALS_DIR,
  readUserSeed,
  seedFileOf,
  writeNatsCredentials,
} from './nats-credentials.js';
import { answeringService, inboxPrefix, type NatsIdentity } from './nats-permissions.js';
import { type PrivateNats, startPrivateNats } from './testing/private-nats.js';

/**
 * The generated rights against a real nats-server (issue #12, "Done when"): each service,
 * with its own credentials, tries every catalogued subject it must not use and is refused
 * by the server; what it may use goes through. An observer user (test-only, subscribe-all,
 * publish-nothing) sees what really reached the bus.
 *
 * Expectations here are written from the catalog's meaning (callers, publishers, owners),
 * not from the generator's output, so a generator that grants too much fails them.
 */

const logger = pino({ level: 'silent' });
// How long connectNats may keep trying here: a refusal must end it at once, a slow start may not.
// Jest's int default (60 s, scripts/jest-int-setup.mjs) stays above it, so a connection that
// runs out of time fails with connectNats' own message, not with Jest's timeout.
const BOOT_TIMEOUT_MS = 30_000;
// A dial (TCP, TLS, nkey handshake) is given up after 2 s in production; two test files at
// once on a loaded 2-core machine can take longer without the server being at fault.
const LOADED_MACHINE_DIAL_MS = 15_000;
const SHARDS = [0, 1, 7];
/** The identities the container-layout test connects as, one after the other. */
const LAYOUT_IDENTITIES = ['gateway', 'audit', 'bootstrap'] as const;

let dir: string;
let nats: PrivateNats;
let observer: NatsConnection;
let seen: string[] = [];

/** Every concrete subject of the catalog: contracts (each shard of a sharded one), events, dead letters. */
function catalogSubjects(): string[] {
  const subjects = new Set<string>();
  for (const d of allRpcDescriptors()) {
    if (d.shardSubject) for (const n of SHARDS) subjects.add(d.shardSubject(n));
    else subjects.add(d.subject);
  }
  for (const e of Object.values(events)) subjects.add(e.subject);
  // Dead letters of every stream that has a consumer (nothing consumes DEAD_LETTERS itself).
  for (const c of Object.values(consumers)) subjects.add(deadLetterSubject(c.stream));
  return [...subjects].sort();
}

const rpcBySubject = new Map(
  allRpcDescriptors().flatMap((d) =>
    (d.shardSubject ? SHARDS.map((n) => d.shardSubject!(n)) : [d.subject]).map((s) => [s, d] as const),
  ),
);
const eventBySubject = new Map(Object.values(events).map((e) => [e.subject, e] as const));

/** What the catalog says `service` may publish on `subject`. */
function mayPublish(service: ServiceName, subject: string): boolean {
  const rpc = rpcBySubject.get(subject);
  if (rpc) return rpc.callers.includes(service);
  const event = eventBySubject.get(subject);
  if (event) return event.publishers.includes(service);
  // A dead-letter subject: only the owner of a durable consumer on that stream.
  return Object.values(consumers).some((c) => c.service === service && deadLetterSubject(c.stream) === subject);
}

/** What the catalog says `service` may subscribe to: the contracts it answers, nothing else. */
function maySubscribe(service: ServiceName, subject: string): boolean {
  const rpc = rpcBySubject.get(subject);
  return rpc !== undefined && answeringService(rpc) === service;
}

/** Someone allowed to publish `subject`, to put a message on it. */
function publisherOf(subject: string): ServiceName {
  const found = SERVICE_NAMES.find((s) => mayPublish(s, subject));
  if (!found) throw new Error(`nobody may publish ${subject}`);
  return found;
}

/** JetStream administration no service may do: create, change, purge or delete any stream. */
function streamAdminSubjects(): string[] {
  return Object.values(streams).flatMap((s) =>
    ['CREATE', 'UPDATE', 'DELETE', 'PURGE'].map((verb) => `$JS.API.STREAM.${verb}.${s.name}`),
  );
}

async function connectAs(identity: NatsIdentity): Promise<{ nc: NatsConnection; violations: string[] }> {
  const nc = await connect({
    servers: nats.url,
    authenticator: nkeyAuthenticator(readUserSeed(seedFileOf(dir, identity))),
    inboxPrefix: inboxPrefix(identity),
  });
  const violations: string[] = [];
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'error' && status.error instanceof errors.PermissionViolationError)
        violations.push(`${status.error.operation} ${status.error.subject}`);
    }
  })();
  return { nc, violations };
}

/**
 * connectNats options that log its retries into `retries`: each dial is given long enough
 * that a slow handshake on a loaded machine is not retried, so any retry is connectNats'
 * own choice, and none may follow a refusal.
 */
function retriesLogged(): {
  options: Pick<NatsConnectOptions, 'logger' | 'bootTimeoutMs' | 'dialTimeoutMs'>;
  retries: string[];
} {
  const retries: string[] = [];
  const options = {
    logger: pino({ level: 'warn' }, { write: (line: string) => void retries.push(line) }),
    bootTimeoutMs: BOOT_TIMEOUT_MS,
    dialTimeoutMs: LOADED_MACHINE_DIAL_MS,
  };
  return { options, retries };
}

/** Lets the server's -ERR lines and the observer's deliveries arrive. */
async function settle(...ncs: NatsConnection[]): Promise<void> {
  for (const nc of ncs) await nc.flush();
  await observer.flush();
  await new Promise((r) => setTimeout(r, 150));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cg-nats-auth-'));
  writeNatsCredentials(dir, {
    observer: { publish: { allow: [], deny: ['>'] }, subscribe: { allow: ['>'] }, allow_responses: false },
  });
  nats = await startPrivateNats({ configFile: join(dir, NATS_AUTH_CONFIG_FILE) });
  observer = await connect({
    servers: nats.url,
    authenticator: nkeyAuthenticator(readUserSeed(seedFileOf(dir, 'observer'))),
  });
  observer.subscribe('>', { callback: (_e, m) => void seen.push(m.subject) });
  const { nc } = await connectAs('bootstrap');
  await provisionJetStream(nc, logger);
  await nc.close();
}, 60_000);

afterAll(async () => {
  await observer?.close();
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('connecting', () => {
  it('a client without credentials cannot connect', async () => {
    await expect(connect({ servers: nats.url })).rejects.toBeInstanceOf(errors.AuthorizationError);
  });

  it('a service without a seed fails at once, saying credentials are required', async () => {
    const attempts = retriesLogged();
    const error = await connectNats({ ...attempts.options, url: nats.url, name: 'test' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NatsAuthError);
    expect((error as Error).message).toBe(
      `NATS at ${nats.url} requires credentials (authorization violation) and none are configured: ` +
        "set NATS_NKEY_SEED_FILE to this service's nkey seed file",
    );
    // On the first refusal, not after 30 s of retries: an authorization violation does not fix itself.
    expect(attempts.retries).toEqual([]);
  });

  it('a service with a seed the server does not know fails at once, saying it was refused', async () => {
    const attempts = retriesLogged();
    const error = await connectNats({
      ...attempts.options,
      url: nats.url,
      name: 'test',
      seed: createUser().getSeed(),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NatsAuthError);
    expect((error as Error).message).toMatch(/refused this service's credentials \(authorization violation\)/);
    expect(attempts.retries).toEqual([]);
  });

  it('an unreachable server is told apart from a refusal', async () => {
    const error = await connectNats({
      url: 'nats://127.0.0.1:1',
      name: 'test',
      logger,
      bootTimeoutMs: 300,
      seed: readUserSeed(seedFileOf(dir, 'gateway')),
    }).catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(NatsAuthError);
    expect((error as Error).message).toMatch(/is not reachable/);
  });

  it(
    "the container layout (compose): nats-server runs from server/ alone, TLS on, and admits each identity's own seed",
    async () => {
      const laidOut = mkdtempSync(join(tmpdir(), 'nats-layout-'));
      const first = await layOutNatsCredentials(laidOut, { tlsHosts: ['localhost', '127.0.0.1'] });
      const ca = readFileSync(join(laidOut, 'tls', 'ca.crt'), 'utf8');
      // Run again (a restart of the one-shot): every seed and the CA are kept.
      expect(await layOutNatsCredentials(laidOut, { tlsHosts: ['localhost', '127.0.0.1'] })).toEqual(first);
      expect(readFileSync(join(laidOut, 'gateway', 'ca.crt'), 'utf8')).toBe(ca);
      const serverDir = join(laidOut, NATS_SERVER_CREDENTIALS_DIR);
      expect(readdirSync(serverDir).sort()).toEqual([NATS_AUTH_CONFIG_FILE, 'ca.crt', 'tls.crt', 'tls.key']);
      expect(statSync(join(laidOut, 'gateway', 'seed.nk')).mode & 0o777).toBe(0o600);
      expect(statSync(join(serverDir, 'tls.key')).mode & 0o777).toBe(0o600);
      // TLS required on client connections, with the generated certificate.
      const config = join(laidOut, 'server.conf');
      writeFileSync(
        config,
        `include ./${NATS_SERVER_CREDENTIALS_DIR}/${NATS_AUTH_CONFIG_FILE}\n` +
          `tls { cert_file: "${join(serverDir, 'tls.crt')}", key_file: "${join(serverDir, 'tls.key')}" }\n`,
      );
      const server = await startPrivateNats({ configFile: config });
      try {
        for (const identity of LAYOUT_IDENTITIES) {
          const nc = await connectNats({
            url: server.url,
            name: identity,
            logger,
            bootTimeoutMs: BOOT_TIMEOUT_MS,
            dialTimeoutMs: LOADED_MACHINE_DIAL_MS,
            seed: readUserSeed(join(laidOut, identity, 'seed.nk')),
            inboxPrefix: inboxPrefix(identity),
            tlsCaFile: join(laidOut, identity, 'ca.crt'),
          });
          expect(nc.info?.tls_required).toBe(true);
          await nc.close();
        }
        // Without the CA the server's certificate is not trusted; without a seed, no entry.
        await expect(
          connect({
            servers: server.url,
            authenticator: nkeyAuthenticator(readUserSeed(join(laidOut, 'gateway', 'seed.nk'))),
            timeout: 2_000,
          }),
        ).rejects.toThrow();
        await expect(
          connect({ servers: server.url, tls: { caFile: join(laidOut, 'gateway', 'ca.crt') } }),
        ).rejects.toBeInstanceOf(errors.AuthorizationError);
      } finally {
        await server.stop();
        rmSync(laidOut, { recursive: true, force: true });
      }
    },
    // Three connections in a row, each allowed BOOT_TIMEOUT_MS: a hang guard above their sum.
    (LAYOUT_IDENTITIES.length + 1) * BOOT_TIMEOUT_MS,
  );

  it('a seed file that holds no seed is rejected naming the file', () => {
    const bad = join(dir, 'bad.nk');
    writeFileSync(bad, 'not a seed\n');
    expect(() => readUserSeed(bad)).toThrow(`${bad} does not hold an NATS user nkey seed`);
  });
});

describe.each(SERVICE_NAMES)('%s, with its own credentials', (service) => {
  it('is refused every catalogued subject it must not publish, and stream administration', async () => {
    const { nc, violations } = await connectAs(service);
    const forbidden = [...catalogSubjects().filter((s) => !mayPublish(service, s)), ...streamAdminSubjects()];
    const allowed = catalogSubjects().filter((s) => mayPublish(service, s));
    expect(forbidden.length).toBeGreaterThan(0);
    seen = [];
    for (const subject of [...forbidden, ...allowed]) nc.publish(subject, new Uint8Array([1]));
    await settle(nc);

    expect(violations.sort()).toEqual(forbidden.map((s) => `publish ${s}`).sort());
    // Nothing refused reached the bus; everything allowed did.
    expect(seen.filter((s) => forbidden.includes(s))).toEqual([]);
    expect(seen.filter((s) => allowed.includes(s)).sort()).toEqual([...allowed].sort());
    await nc.close();
  });

  it('receives nothing outside its rights, even subscribed to `>` and to every subject', async () => {
    const { nc, violations } = await connectAs(service);
    const received: string[] = [];
    const candidates = [
      '>',
      '$JS.>',
      ...catalogSubjects(),
      ...SERVICE_NAMES.filter((s) => s !== service).map((s) => `${inboxPrefix(s)}.>`),
    ];
    for (const subject of candidates) {
      // A refused subscription's callback gets the error (and no message): counted as a violation below.
      nc.subscribe(subject, { callback: (error, m) => void (error ? undefined : received.push(m.subject)) });
    }
    await settle(nc);
    const refused = candidates.filter((s) => !maySubscribe(service, s));
    expect(violations.sort()).toEqual(refused.map((s) => `subscription ${s}`).sort());

    // A message on every catalogued subject, each from someone allowed to send it.
    const senders = new Map<ServiceName, NatsConnection>();
    for (const subject of catalogSubjects()) {
      const sender = publisherOf(subject);
      if (!senders.has(sender)) senders.set(sender, (await connectAs(sender)).nc);
      senders.get(sender)!.publish(subject, new Uint8Array([2]));
    }
    await settle(...senders.values(), nc);

    const answered = catalogSubjects().filter((s) => maySubscribe(service, s));
    expect(new Set(received)).toEqual(new Set(answered));
    for (const sender of senders.values()) await sender.close();
    await nc.close();
  });
});

describe("CONTROL's pushed sequences", () => {
  it('reach its reader (the gateway) before the publisher holds its ack; no other service may subscribe to them', async () => {
    const destination = streams.control.republish.destination;
    const { nc: gateway, violations } = await connectAs('gateway');
    const pushed: number[] = [];
    gateway.subscribe(destination, {
      callback: (error, m) => void (error ? undefined : pushed.push(Number(m.headers?.get('Nats-Sequence')))),
    });
    await gateway.flush();
    const { nc: policy } = await connectAs('policy');
    const ack = await jetstream(policy).publish(events.policyChanged.subject, new Uint8Array([3]));
    // The copy was queued to the gateway before the ack was sent: one PING/PONG brings it.
    await gateway.flush();
    expect(pushed).toContain(ack.seq);
    expect(violations).toEqual([]);

    for (const service of SERVICE_NAMES.filter((s) => !(streams.control.readers as readonly string[]).includes(s))) {
      const other = await connectAs(service);
      other.nc.subscribe(destination, { callback: () => undefined });
      await settle(other.nc);
      expect(other.violations).toEqual([`subscription ${destination}`]);
      await other.nc.close();
    }
    await Promise.all([gateway.close(), policy.close()]);
  });
});

describe('JetStream after everyone tried', () => {
  it('every stream and durable consumer is still there', async () => {
    const { nc } = await connectAs('bootstrap');
    const jsm = await jetstreamManager(nc);
    for (const s of Object.values(streams)) await expect(jsm.streams.info(s.name)).resolves.toBeDefined();
    for (const c of Object.values(consumers))
      await expect(jsm.consumers.info(c.stream.name, c.durable)).resolves.toBeDefined();
    await nc.close();
  });
});
