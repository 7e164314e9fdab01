import type { AppError } from '@context-gateway/errors';
import {
  type Consumer,
  type ConsumerMessages,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type OrderedConsumerOptions,
} from '@nats-io/jetstream';
import type { NatsConnection, Status } from '@nats-io/transport-node';
import type { Logger } from 'pino';

export interface StreamFollowerOptions {
  stream: string;
  /** Read only this subject (one string: servers before 2.10 take no subject list); the whole stream when absent. */
  filterSubject?: string;
  /** Each message, in stream order, applied synchronously before waiters up to its sequence resolve. */
  onMessage: (message: { subject: string; data: Uint8Array; seq: number }) => void;
  /** What a wait that runs out of time rejects with. */
  lateError: () => AppError;
  /** Names the reader in logs ("control stream reader"). */
  name: string;
  logger: Logger;
}

/** Restarts back off 1, 2, 4 s, then every 5 s: the first one goes at once. */
const RETRY_MAX_MS = 5_000;
/** A reader that keeps failing says so at this pace, not on every attempt. */
const RETRY_WARN_EVERY_MS = 30_000;

/**
 * Follows a JetStream stream in this process with an ordered consumer (in memory,
 * flow-controlled), and tells callers when it has read up to a sequence. If the reader dies
 * (not on shutdown) it starts again after the last sequence it read: a dead reader would make
 * every wait run out and fail closed.
 *
 * The follower, not the client, makes every new consumer: after every reconnect (a restarted
 * nats-server has lost every in-memory consumer), when the consumer is deleted or not found,
 * and when a consumer started by time sees a delivery gap. The client would recreate it by
 * copying the first consumer's configuration and changing only its start to a sequence; a
 * start by time (the token revocations' replay) stays in it, nats-server refuses that pair,
 * and the client retried the refused create forever, silently, while every wait failed
 * closed (the fault suite's nats-server restart, docs/reliability.md). The client is told to
 * give up instead (abort_on_missing_resource): when it resubscribed a consumer we had just
 * closed, each reconnect leaked one subscription and left an orphan consumer on the server.
 *
 * The stream should keep its sequence numbers. One found behind the last sequence read when
 * the follower starts again (recreated after data loss) is read again from its first message
 * with nothing counted as read, so waits fail closed rather than pass on old positions; what
 * callers kept from the old sequence numbers is theirs to fix (docs/reliability.md).
 */
export class StreamFollower {
  private consumed = 0;
  private waiters: { seq: number; resolve: () => void }[] = [];
  private messages: ConsumerMessages | undefined;
  private consumer: Consumer | undefined;
  private loop: Promise<void> | undefined;
  /** The consumer being created, awaited on stop so none is left behind. */
  private reading: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private connection: AsyncIterable<Status> | undefined;
  /** Where start() began, reused by a restart before any message is read (not a 30-day replay from 1). */
  private origin: Partial<OrderedConsumerOptions> = {};
  private readAny = false;
  private failures = 0;
  private lastFailureLogAt = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly opts: StreamFollowerOptions,
  ) {}

  /** The last sequence read (or counted as read at start). */
  get consumedSeq(): number {
    return this.consumed;
  }

  /** Starts reading at `from`; sequences up to `consumedSeq` count as read already. */
  async start(from: Partial<OrderedConsumerOptions>, consumedSeq = 0): Promise<void> {
    this.consumed = consumedSeq;
    this.origin = from;
    this.watchConnection();
    try {
      await this.read(from);
    } catch (error) {
      this.unwatchConnection();
      throw error;
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.retryTimer);
    this.unwatchConnection();
    await this.reading?.catch(() => undefined);
    await this.messages?.close();
    await this.loop;
    // Not awaited: with NATS away it would hold shutdown for the request timeout.
    if (this.consumer) deleteConsumer(this.consumer);
  }

  /** Resolves when every message up to `seq` has been read, or rejects with lateError after `timeoutMs`. */
  waitConsumed(seq: number, timeoutMs: number): Promise<void> {
    if (this.consumed >= seq) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(this.opts.lateError());
      }, timeoutMs);
      const waiter = { seq, resolve: () => (clearTimeout(timer), resolve()) };
      this.waiters.push(waiter);
    });
  }

  private async read(from: Partial<OrderedConsumerOptions>): Promise<void> {
    const consumer = await jetstream(this.nc).consumers.get(this.opts.stream, {
      ...(this.opts.filterSubject ? { filter_subjects: this.opts.filterSubject } : {}),
      ...from,
    });
    // The client stops, rather than recreates, a consumer it finds gone: we restart it.
    const messages = await consumer.consume({ abort_on_missing_resource: true });
    if (this.stopping) {
      await messages.close();
      return;
    }
    this.messages = messages;
    this.consumer = consumer;
    this.watchStatus(messages, from.deliver_policy === DeliverPolicy.StartTime);
    this.loop = (async () => {
      for await (const m of messages) {
        // A consumer started again begins after the last one read, so this is a stream
        // whose sequence numbers went backwards: never applied twice, but said loudly.
        if (m.seq <= this.consumed) {
          this.opts.logger.error(
            { seq: m.seq, consumedSeq: this.consumed, stream: this.opts.stream },
            `${this.opts.name} skips a message at or below the last sequence read: stream recreated?`,
          );
          continue;
        }
        this.readAny = true;
        this.opts.onMessage(m);
        this.advance(m.seq);
      }
    })().then(
      () => this.ended(consumer),
      (error: unknown) => this.ended(consumer, error),
    );
  }

  /** Ends the read on the statuses the client would answer by recreating the consumer itself. */
  private watchStatus(messages: ConsumerMessages, startedByTime: boolean): void {
    void (async () => {
      // The client would recreate a deleted consumer only after two missed heartbeats (about
      // 30 s), all of which every wait spends failing closed: start again at once instead.
      // On a delivery gap ('reset') it recreates at once, but a consumer started by time
      // comes back as a pair nats-server refuses, forever.
      for await (const status of messages.status()) {
        const gone = status.type === 'consumer_deleted' || status.type === 'consumer_not_found';
        if (!gone && !(status.type === 'reset' && startedByTime)) continue;
        this.opts.logger.warn(
          { fromSeq: this.consumed + 1, status: status.type },
          `${this.opts.name}'s consumer is gone`,
        );
        await messages.close();
        return;
      }
    })().catch((error: unknown) => this.opts.logger.warn({ err: error }, `${this.opts.name} status watch ended`));
  }

  private ended(consumer: Consumer, error?: unknown): void {
    if (this.stopping) return;
    // The client ends the read with an error when its consumer is gone (abort_on_missing_resource).
    this.opts.logger.warn({ err: error, fromSeq: this.consumed + 1 }, `${this.opts.name} ended; reading again`);
    // Best effort: a server that kept the consumer (a reconnect without a restart) would hold
    // it for its 5 minute inactivity threshold.
    deleteConsumer(consumer);
    this.restartSoon(0);
  }

  /** After a reconnect the consumer may be gone with the server's memory: read again from our own position. */
  private watchConnection(): void {
    if (this.connection) return;
    const status = this.nc.status();
    this.connection = status;
    void (async () => {
      for await (const s of status) {
        if (s.type !== 'reconnect' || this.stopping) continue;
        this.opts.logger.info({ fromSeq: this.consumed + 1 }, `${this.opts.name} reads again after a reconnect`);
        // Ends the read loop, which starts again after the last sequence read.
        await this.messages?.close();
      }
    })().catch((error: unknown) => this.opts.logger.warn({ err: error }, `${this.opts.name} connection watch ended`));
  }

  private unwatchConnection(): void {
    // nats.js's status iterator has stop(), which unregisters it; the type does not say so.
    const connection: unknown = this.connection;
    if (connection instanceof Object && 'stop' in connection && typeof connection.stop === 'function')
      (connection as { stop(): void }).stop();
    this.connection = undefined;
  }

  private restartSoon(delayMs: number): void {
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.stopping) return;
      this.reading = this.readAgain().then(
        () => this.recovered(),
        (error: unknown) => this.failed(error),
      );
    }, delayMs);
    this.retryTimer.unref();
  }

  private async readAgain(): Promise<void> {
    const { state } = await (await jetstreamManager(this.nc)).streams.info(this.opts.stream);
    if (state.last_seq < this.consumed) {
      this.opts.logger.error(
        { stream: this.opts.stream, lastSeq: state.last_seq, consumedSeq: this.consumed, firstSeq: state.first_seq },
        `${this.opts.name}'s stream went backwards (recreated?): reading it again from its first message`,
      );
      // Waiters on the old positions keep waiting (fail closed) until the new stream gets there.
      this.consumed = 0;
      this.readAny = true;
      return this.read({ deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Math.max(state.first_seq, 1) });
    }
    return this.read(
      this.readAny ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.consumed + 1 } : this.origin,
    );
  }

  private recovered(): void {
    if (this.stopping) return;
    this.opts.logger.info({ fromSeq: this.consumed + 1, attempts: this.failures + 1 }, `${this.opts.name} reads again`);
    this.failures = 0;
  }

  private failed(error: unknown): void {
    if (this.stopping) return;
    this.failures += 1;
    const now = Date.now();
    if (this.failures === 1) {
      this.lastFailureLogAt = now;
      this.opts.logger.error({ err: error }, `${this.opts.name} cannot read again; retrying`);
    } else if (now - this.lastFailureLogAt >= RETRY_WARN_EVERY_MS) {
      this.lastFailureLogAt = now;
      this.opts.logger.warn({ err: error, attempts: this.failures }, `${this.opts.name} still cannot read again`);
    }
    this.restartSoon(Math.min(1_000 * 2 ** (this.failures - 1), RETRY_MAX_MS));
  }

  private advance(seq: number): void {
    if (seq <= this.consumed) return;
    this.consumed = seq;
    if (this.waiters.length === 0) return;
    const ready = this.waiters.filter((w) => w.seq <= seq);
    this.waiters = this.waiters.filter((w) => w.seq > seq);
    for (const w of ready) w.resolve();
  }
}

/** Best effort, never throws: ordered consumers are ephemeral, the server drops them after 5 idle minutes anyway. */
function deleteConsumer(consumer: Consumer): void {
  // An ordered consumer that never got created throws synchronously (it has no name).
  Promise.resolve()
    .then(() => consumer.delete())
    .catch(() => undefined);
}
