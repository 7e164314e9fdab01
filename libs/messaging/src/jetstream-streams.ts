import type { StreamDescriptor } from '@context-gateway/proto';
import { DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType, type StreamConfig } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

function toConfig(stream: StreamDescriptor): Partial<StreamConfig> & { name: string } {
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
    num_replicas: 1,
  };
}

/**
 * Creates each stream or brings its mutable settings up to date. Idempotent: every
 * service that publishes or consumes a stream calls it at start, in any order.
 */
export async function ensureStreams(
  nc: NatsConnection,
  streams: readonly StreamDescriptor[],
  logger: Logger,
): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const stream of streams) {
    const config = toConfig(stream);
    try {
      await jsm.streams.info(stream.name);
      // storage and retention cannot change on a live stream; the rest can.
      const { storage: _storage, retention: _retention, ...mutable } = config;
      await jsm.streams.update(stream.name, mutable);
    } catch (error) {
      if (!isStreamNotFound(error)) throw error;
      await jsm.streams.add(config);
      logger.info({ stream: stream.name }, 'jetstream stream created');
    }
  }
}

function isStreamNotFound(error: unknown): boolean {
  return error instanceof Error && /stream not found/i.test(error.message);
}
