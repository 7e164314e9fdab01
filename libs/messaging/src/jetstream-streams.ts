import { consumers, type StreamDescriptor, streams as catalogStreams } from '@context-gateway/proto';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

function toConfig(stream: StreamDescriptor, replicas: number): Partial<StreamConfig> & { name: string } {
  return {
    name: stream.name,
    subjects: [...stream.subjects],
    description: stream.description,
    retention: stream.retention === 'workqueue' ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
    // File storage: what is in a stream must survive a NATS restart.
    storage: StorageType.File,
    duplicate_window: nanos(stream.duplicateWindowMs),
    max_age: nanos(stream.maxAgeMs),
    // Refuse new messages rather than silently dropping old ones when a limit is hit.
    discard: DiscardPolicy.New,
    // 3 in a cluster (deploy/): a stream survives the loss of one NATS server.
    num_replicas: replicas,
    // Headers only: a reader needs the sequence, and the body is read through its consumer.
    ...(stream.republish
      ? { republish: { src: stream.republish.source, dest: stream.republish.destination, headers_only: true } }
      : {}),
  };
}

/**
 * Creates each stream or brings its mutable settings up to date. Idempotent. Runs with the
 * bootstrap identity (provisionJetStream), or in tests on a server without authorization:
 * services may not create, change, purge or delete streams.
 */
export async function ensureStreams(
  nc: NatsConnection,
  streams: readonly StreamDescriptor[],
  logger: Logger,
  replicas = 1,
): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const stream of streams) {
    const config = toConfig(stream, replicas);
    let existing;
    try {
      existing = await jsm.streams.info(stream.name);
    } catch (error) {
      if (!isStreamNotFound(error)) throw error;
      await jsm.streams.add(config);
      logger.info({ stream: stream.name, replicas }, 'jetstream stream created');
      continue;
    }
    const have = existing.config.num_replicas;
    checkReplicas(stream.name, have, replicas);
    // storage and retention cannot change on a live stream; the rest can.
    const { storage: _storage, retention: _retention, ...mutable } = config;
    try {
      await jsm.streams.update(stream.name, mutable);
    } catch (error) {
      // nats-server before 2.10 cannot add RePublish to a live stream. Everything else is
      // still brought up to date; its readers see no pushed sequences and ask the server
      // for the stream's last sequence instead (slower, as correct).
      if (!(mutable.republish && /republish/i.test(String(error)))) throw error;
      const { republish: _republish, ...rest } = mutable;
      await jsm.streams.update(stream.name, rest);
      logger.warn(
        { stream: stream.name },
        'jetstream stream created without RePublish and this server cannot add it (nats-server < 2.10): its readers fall back to asking for its last sequence',
      );
    }
    if (have < replicas)
      logger.info({ stream: stream.name, from: have, to: replicas }, 'jetstream stream replicas raised');
  }
}

/**
 * A stream is never made less durable by a (re)deploy: asking for fewer replicas than it has
 * (a bootstrap run without NATS_STREAM_REPLICAS against the cluster, say) is refused, naming
 * both numbers. Lowering it is an operator's deliberate `nats stream edit`, never a default.
 */
export function checkReplicas(stream: string, have: number, wanted: number): void {
  if (have > wanted)
    throw new Error(
      `JetStream stream ${stream} has ${have} replicas and this bootstrap asks for ${wanted}: refusing to lower it ` +
        `(set NATS_STREAM_REPLICAS=${have}; to lower it on purpose, edit the stream with the nats CLI first)`,
    );
}

function isStreamNotFound(error: unknown): boolean {
  return error instanceof Error && /stream not found/i.test(error.message);
}

/**
 * The bootstrap step (`pnpm nats:bootstrap`, run before the services by `pnpm start`, the
 * tests, compose and deploy/): every stream of the catalog, and every durable consumer as a
 * pull consumer if it does not exist yet. An existing consumer is left as it is: its owner
 * tunes it (ack wait, max ack pending) with the one right it has on it, and creating it here
 * first is what keeps that owner from ever making it a push consumer delivering elsewhere.
 */
export async function provisionJetStream(nc: NatsConnection, logger: Logger, replicas = 1): Promise<void> {
  await ensureStreams(nc, Object.values(catalogStreams), logger, replicas);
  const jsm = await jetstreamManager(nc);
  for (const c of Object.values(consumers)) {
    try {
      await jsm.consumers.info(c.stream.name, c.durable);
    } catch (error) {
      if (!(error instanceof Error && /consumer not found/i.test(error.message))) throw error;
      await jsm.consumers.add(c.stream.name, {
        durable_name: c.durable,
        filter_subject: c.filterSubject,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        max_deliver: -1,
      });
      logger.info({ stream: c.stream.name, consumer: c.durable }, 'jetstream consumer created');
    }
  }
}

/** A stream a service needs is missing: the bootstrap has not run against this server. */
export class StreamsNotProvisionedError extends Error {
  override readonly name = 'StreamsNotProvisionedError';
}

/**
 * A service's boot check: each stream it uses exists (read-only STREAM.INFO; services have
 * no right to create one). A missing stream fails the boot with what to run.
 */
export async function verifyStreams(nc: NatsConnection, streams: readonly StreamDescriptor[]): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const missing: string[] = [];
  for (const stream of streams) {
    try {
      await jsm.streams.info(stream.name);
    } catch (error) {
      if (!isStreamNotFound(error)) throw error;
      missing.push(stream.name);
    }
  }
  if (missing.length > 0) {
    throw new StreamsNotProvisionedError(
      `JetStream stream(s) ${missing.join(', ')} do not exist on this NATS server: run the NATS bootstrap ` +
        '(`pnpm nats:bootstrap`, with the bootstrap identity) before the services',
    );
  }
}
