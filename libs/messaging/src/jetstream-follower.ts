import type { AppError } from '@context-gateway/errors';
import { type ConsumerMessages, DeliverPolicy, jetstream, type OrderedConsumerOptions } from '@nats-io/jetstream';
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

/**
 * Follows a JetStream stream in this process with an ordered consumer (in memory,
 * flow-controlled, recreated by the client on gaps), and tells callers when it has read up
 * to a sequence. If the reader dies (not on shutdown) it starts again after the last
 * sequence it read: a dead reader would make every wait run out and fail closed.
 *
 * It also starts again itself, rather than leave it to the client, whenever its consumer
 * may be gone: after every reconnect (a restarted nats-server has lost every in-memory
 * consumer) and when the client reports the consumer deleted or not found. The client's own
 * recreation copies the first consumer's configuration and only changes its start to a
 * sequence; a start by time (the token revocations' replay) stays in it, nats-server refuses
 * that pair, and the client retried the refused create forever, silently, while every wait
 * failed closed (the fault suite's nats-server restart, docs/reliability.md).
 */
export class StreamFollower {
  private consumed = 0;
  private waiters: { seq: number; resolve: () => void }[] = [];
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private stopping = false;
  private connection: AsyncIterable<Status> | undefined;

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
    this.watchConnection();
    await this.read(from);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    // nats.js's status iterator has stop(), which unregisters it; the type does not say so.
    const connection: unknown = this.connection;
    if (connection instanceof Object && 'stop' in connection && typeof connection.stop === 'function')
      (connection as { stop(): void }).stop();
    await this.messages?.close();
    await this.loop;
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
    const messages = await consumer.consume();
    this.messages = messages;
    void (async () => {
      // The client would recreate a deleted consumer only after two missed heartbeats (about
      // 30 s), all of which every wait spends failing closed: start again at once instead.
      for await (const status of messages.status()) {
        if (status.type !== 'consumer_deleted' && status.type !== 'consumer_not_found') continue;
        this.opts.logger.warn(
          { fromSeq: this.consumed + 1, status: status.type },
          `${this.opts.name}'s consumer is gone`,
        );
        await messages.close();
        return;
      }
    })().catch((error: unknown) => this.opts.logger.warn({ err: error }, `${this.opts.name} status watch ended`));
    this.loop = (async () => {
      for await (const m of messages) {
        // Each message once: a consumer started again begins after the last one read.
        if (m.seq <= this.consumed) continue;
        this.opts.onMessage(m);
        this.advance(m.seq);
      }
    })()
      .catch((error) => this.opts.logger.error({ err: error }, `${this.opts.name} stopped`))
      .then(() => {
        if (this.stopping) return;
        this.opts.logger.warn({ fromSeq: this.consumed + 1 }, `${this.opts.name} ended; restarting`);
        this.restartSoon();
      });
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

  private restartSoon(): void {
    setTimeout(() => {
      if (this.stopping) return;
      this.read({ deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.consumed + 1 }).catch((error) => {
        this.opts.logger.error({ err: error }, `${this.opts.name} restart failed; trying again`);
        this.restartSoon();
      });
    }, 1_000).unref();
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
