import { setImmediate as yieldToEventLoop } from 'node:timers/promises';

import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import {
  fetchCompactTree,
  fetchRootHash,
  hashesEqual,
  LogWriter,
  signCheckpointWith,
} from '@context-gateway/merkle-log';
import { ensureDurableConsumer, publishDeadLetter } from '@context-gateway/messaging';
import { AUDIT_BATCH_HEADER, consumers, events, streams } from '@context-gateway/proto';
import { LOGGER, NATS_CONNECTION, PG_POOL, SERVICE_ENV } from '@context-gateway/service-kit';
import { AckPolicy, DeliverPolicy, type JsMsg } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import type pg from 'pg';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import { AuditMetrics } from './audit.metrics.js';
import { BoundedPull } from './bounded-pull.js';
import { EventDecoder } from './event-decoder.js';
import { canonicalEventBytes, type DecodedBatch, PayloadKind, searchFieldBytes } from './event-decoding.js';
import { LogRepository, MIN_STORED_NODE_LEVEL, type NewEntry, WRITER_ROLE } from './log.repository.js';
import { SigningKeyHolder } from './signing-key.holder.js';
import { WitnessSubmitter } from './witness-submitter.js';
import { WriterQueue } from './writer-queue.js';

interface PreparedBatch {
  messages: JsMsg[];
  /** Events the messages carried (a batch message carries several). */
  events: number;
  entries: NewEntry[];
  nodes: { level: number; index: number; hash: Buffer }[];
  eventIds: Set<string>;
  /** The log's size once this batch is committed. */
  size: number;
}

/** A batch pulled from the stream, its decoding under way. */
interface PendingBatch {
  messages: JsMsg[];
  decoded: Promise<DecodedBatch>;
}

/** The durable consumer's name: its position in the AUDIT stream survives restarts. */
const AUDIT_CONSUMER = consumers.auditLogWriter.durable;

/** nats-server's own default max_payload, for a connection that has not told us its own. */
const DEFAULT_MAX_PAYLOAD = 1_024 * 1_024;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface WriterStats {
  active: boolean;
  size: number;
  appended: number;
  batches: number;
  duplicates: number;
}

/**
 * The log's single writer. Every instance runs this loop; only the one holding a
 * session-level Postgres advisory lock (on its own connection, which also runs every write,
 * as the `audit_writer` role) consumes — the others stand by and take over when that
 * connection drops. It pulls events from the AUDIT stream in batches, computes their
 * leaves (index, event id, previous leaf hash, event) and the tree with libs/merkle-log,
 * appends each batch in one transaction, and acks the messages only after the commit. A
 * redelivered event (a crash between commit and ack) is found by its event id and acked
 * without a second entry; the unique constraint on event_id is the backstop.
 */
@Injectable()
export class LogWriterService implements OnApplicationBootstrap, OnModuleDestroy {
  private stopping = false;
  private loop: Promise<void> | undefined;
  private messages: BoundedPull | undefined;
  private wake: (() => void) | undefined;
  private readonly decoder: EventDecoder;
  readonly stats: WriterStats = { active: false, size: 0, appended: 0, batches: 0, duplicates: 0 };

  constructor(
    @Inject(PG_POOL) private readonly pool: pg.Pool,
    @Inject(NATS_CONNECTION) private readonly nc: NatsConnection,
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly signingKey: SigningKeyHolder,
    private readonly clock: Clock,
    private readonly auditMetrics: AuditMetrics,
    private readonly witness: WitnessSubmitter,
  ) {
    this.decoder = new EventDecoder(env.AUDIT_DECODE_THREADS);
  }

  onApplicationBootstrap(): void {
    this.loop = this.run();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.messages?.stop();
    await this.loop;
    await this.decoder.close();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      let client: pg.PoolClient | undefined;
      let broken: Error | undefined;
      let connectionLost: Error | undefined;
      // A checked-out pg client has no error listener of the pool's: when Postgres restarts
      // or terminates the connection while the writer waits for events, the client emits
      // 'error' with nobody listening, which throws out of pg's socket handler. This one
      // ends the session instead, so the loop below connects again and drains the backlog.
      const onConnectionError = (error: Error) => {
        if (connectionLost) return;
        connectionLost = error;
        this.logger.error({ err: error }, 'audit log writer lost its database connection; reconnecting');
        void this.messages?.stop();
        this.wake?.();
      };
      try {
        client = await this.pool.connect();
        client.on('error', onConnectionError);
        // Long appends must not hit the pool's statement timeout meant for request queries.
        await client.query('SET statement_timeout = 0');
        if (!(await LogRepository.tryWriterLock(client))) {
          client.release();
          client = undefined;
          await sleep(this.env.AUDIT_STANDBY_POLL_MS);
          continue;
        }
        await client.query(`SET ROLE ${WRITER_ROLE}`);
        this.logger.info('audit log writer lock taken: this instance appends');
        await this.consume(client);
        // The consume loop also ends quietly when the connection dies under it.
        if (connectionLost) throw connectionLost;
      } catch (error) {
        broken = error as Error;
        if (error !== connectionLost) this.logger.error({ err: error }, 'audit log writer failed; retrying');
      } finally {
        this.stats.active = false;
        await this.messages?.stop();
        this.messages = undefined;
        // The pool's own listener is back on the client from release() on.
        client?.off('error', onConnectionError);
        // Destroying the connection releases the advisory lock with it.
        client?.release(broken ?? new Error('writer stopped'));
      }
      if (broken && !this.stopping) await sleep(this.env.AUDIT_STANDBY_POLL_MS);
    }
  }

  /** Rebuilds the writer from the stored log: last leaf hash and the frontier hashes. */
  private async resume(db: pg.PoolClient): Promise<{ writer: LogWriter; lastCheckpoint: number }> {
    const head = await LogRepository.head(db);
    const reader = LogRepository.hashReader(db);
    const writer = LogWriter.resume(await fetchCompactTree(head.size, reader), head.lastLeafHash);

    // Never extend a log that no longer matches what was signed: appending would sign over it.
    const checkpoint = await LogRepository.latestCheckpoint(db);
    if (checkpoint && checkpoint.treeSize > head.size) {
      throw new AppError(
        'internal',
        `the log has ${head.size} entries but checkpoint ${checkpoint.treeSize} was signed: entries were deleted`,
      );
    }
    if (checkpoint && !hashesEqual(await fetchRootHash(checkpoint.treeSize, reader), checkpoint.rootHash)) {
      throw new AppError(
        'internal',
        `the stored log no longer matches signed checkpoint ${checkpoint.treeSize}; run pnpm audit:verify`,
      );
    }
    return { writer, lastCheckpoint: checkpoint?.treeSize ?? 0 };
  }

  private async consume(db: pg.PoolClient): Promise<void> {
    const { writer, lastCheckpoint } = await this.resume(db);
    let checkpointedSize = lastCheckpoint;
    let checkpointedAt = 0;
    this.stats.size = writer.size;
    this.stats.active = true;

    const batchSize = this.env.AUDIT_BATCH_SIZE;
    const consumer = await ensureDurableConsumer(this.nc, streams.audit.name, {
      durable_name: AUDIT_CONSUMER,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: events.auditRecorded.subject,
      // Never give up on an audit event: an append that keeps failing stops the writer, not the event.
      max_deliver: -1,
      // Short, so a killed writer's in-flight batch comes back to its successor within seconds
      // (a redelivery of something already appended is recognised by its event id).
      ack_wait: nanos(10_000),
      max_ack_pending: batchSize * 4,
    });
    const queue = new WriterQueue<JsMsg>(batchSize);
    // Pulls only while the queue has room, each pull bounded in bytes; wakes the writer loop
    // (queue.push) once a whole batch, by count or by bytes, is waiting.
    const messages = new BoundedPull(consumer, this.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD);
    this.messages = messages;
    let ended = false;
    // Stopping the service or losing the database connection ends the wait for a batch.
    this.wake = () => queue.wake();
    const pump = messages.run(queue).finally(() => {
      ended = true;
      queue.wake();
    });
    // Observed now, awaited when the session ends: a pull that failed ends the session.
    pump.catch(() => undefined);

    // A three-stage pipeline: while batch N's transaction runs in Postgres, batch N+1 is
    // chained and hashed here and batch N+2 is decoded on the decoder threads. Commits stay
    // strictly in order — N+1 is sent only after N committed — so a failed batch ends the
    // session with nothing after it written.
    const startDecoding = (messages: JsMsg[]): PendingBatch => {
      const decoded = this.decoder.decode(
        messages.map((m) => ({
          data: m.data,
          kind: m.headers?.get(AUDIT_BATCH_HEADER) === '1' ? PayloadKind.Batch : PayloadKind.Event,
        })),
      );
      // Awaited when its turn comes; observed now so a failure is not an unhandled rejection.
      decoded.catch(() => undefined);
      return { messages, decoded };
    };
    let inflight: { done: Promise<void>; messages: JsMsg[]; eventIds: Set<string> } | undefined;
    let current: PendingBatch | undefined;
    let next: PendingBatch | undefined;
    let pullFailure: Error | undefined;
    try {
      while (!this.stopping && !ended) {
        if (!next) {
          await queue.waitForBatch(queue.length === 0 ? 100 : this.env.AUDIT_BATCH_WAIT_MS);
          if (queue.length > 0) next = startDecoding(queue.take());
        }
        current = next;
        next = undefined;
        if (current) {
          // Look ahead only when a whole batch is already waiting: a partial one waits its turn to fill.
          if (queue.full) next = startDecoding(queue.take());
          const t0 = performance.now();
          const prepared = await this.prepare(db, writer, current.messages, await current.decoded, inflight?.eventIds);
          const t1 = performance.now();
          if (inflight) await inflight.done;
          this.logger.debug(
            {
              size: current.messages.length,
              prepareMs: Math.round(t1 - t0),
              waitedForCommitMs: Math.round(performance.now() - t1),
              queued: queue.length,
            },
            'audit batch prepared',
          );
          const done = this.commit(db, prepared);
          // Observed now, awaited later: a failed commit must end this writer session (the
          // `await inflight.done` below rethrows it), not surface as an unhandled rejection
          // that kills the process while the loop waits for the next batch.
          done.catch(() => undefined);
          inflight = { done, messages: current.messages, eventIds: prepared.eventIds };
          current = undefined;
        }
        if (
          writer.size > checkpointedSize &&
          this.clock.now() - checkpointedAt >= this.env.AUDIT_CHECKPOINT_INTERVAL_MS
        ) {
          // Sign only what is committed: the writer holds nothing uncommitted once inflight is done.
          if (inflight) await inflight.done;
          inflight = undefined;
          await this.checkpoint(db, writer);
          checkpointedSize = writer.size;
          checkpointedAt = this.clock.now();
        }
      }
      if (inflight) await inflight.done;
      inflight = undefined;
    } finally {
      // stop() first: once the queue is closed the pump must not start another pull.
      const pullStopped = messages.stop();
      queue.close();
      await pullStopped;
      pullFailure = await pump.then(
        () => undefined,
        (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
      );
      // Whatever was pulled but not committed comes back (to us after a restart, or the next writer).
      const unsettled = inflight;
      const uncommitted = unsettled
        ? await unsettled.done.then(
            () => [],
            () => unsettled.messages,
          )
        : [];
      for (const m of [...uncommitted, ...(current?.messages ?? []), ...(next?.messages ?? []), ...queue.drain()])
        m.nak();
    }
    // A pull that failed ended the session: the loop in run() logs it and starts another after a pause.
    if (pullFailure !== undefined && !this.stopping) throw pullFailure;
  }

  /** Dead-letters what could not be decoded, drops duplicates and computes the leaves; the writer advances in memory only. */
  private async prepare(
    db: pg.PoolClient,
    writer: LogWriter,
    batch: JsMsg[],
    decoded: DecodedBatch,
    inflightIds: Set<string> | undefined,
  ): Promise<PreparedBatch> {
    const refused = new Set<number>();
    for (const failure of decoded.failures) {
      const message = batch[failure.index];
      if (!message) throw batchMismatch(batch.length, failure.index);
      refused.add(failure.index);
      await this.deadLetter(message, failure.code, failure.message);
    }
    // Only a redelivered message (a crash or failure between commit and ack) can already be
    // in the log — the stream itself drops re-published event ids — so only those cost a
    // lookup. Anything else that slips through hits the unique constraint: the batch fails,
    // comes back redelivered, and is de-duplicated then.
    const { messageIndex } = decoded;
    const redelivered = decoded.eventIds.filter((_, i) => batch[messageIndex[i] ?? -1]?.redelivered === true);
    const existing = await LogRepository.existingEventIds(db, [...new Set(redelivered)]);
    // If the commit fails the in-memory writer is ahead of the database: the error ends this
    // writer session and the next one is rebuilt from what was committed.
    const eventIds = new Set<string>();
    const entries: NewEntry[] = [];
    const nodes: { level: number; index: number; hash: Buffer }[] = [];
    const { eventIds: ids, occurredAtMs } = decoded;
    for (let i = 0; i < ids.length; i += 1) {
      // One slot per event in every column (event-decoding.ts); a short column is a decoder bug.
      const id = ids[i];
      const from = messageIndex[i];
      if (id === undefined || from === undefined || batch[from] === undefined || refused.has(from))
        throw batchMismatch(batch.length, i);
      if (existing.has(id) || eventIds.has(id) || inflightIds?.has(id)) continue;
      const canonical = canonicalEventBytes(decoded, i);
      const searchFields = searchFieldBytes(decoded, i);
      const occurredAt = occurredAtMs[i];
      if (canonical === undefined || searchFields === undefined || occurredAt === undefined)
        throw batchMismatch(batch.length, i);
      eventIds.add(id);
      // Hand the event loop back now and then: the previous batch's transaction is waiting
      // on its round trips, and holding the loop for a whole batch would serialize the two.
      if (entries.length > 0 && entries.length % 500 === 0) await yieldToEventLoop();
      const appended = writer.appendCanonical(id, canonical, (node, hash) => {
        if (node.level >= MIN_STORED_NODE_LEVEL) nodes.push({ level: node.level, index: node.index, hash });
      });
      entries.push({
        seq: appended.index,
        searchFields,
        occurredAtMs: occurredAt,
        entry: appended.canonicalBytes,
        leafHash: appended.leafHash,
      });
    }
    const messages = batch.filter((_, i) => !refused.has(i));
    return { messages, events: ids.length, entries, nodes, eventIds, size: writer.size };
  }

  /** One transaction per batch; the messages are acked only after it committed. */
  private async commit(db: pg.PoolClient, prepared: PreparedBatch): Promise<void> {
    if (prepared.entries.length > 0) await LogRepository.append(db, prepared.entries, prepared.nodes);
    for (const m of prepared.messages) m.ack();
    this.auditMetrics.appended(prepared.entries);
    this.stats.size = prepared.size;
    this.stats.appended += prepared.entries.length;
    this.stats.duplicates += prepared.events - prepared.entries.length;
    this.stats.batches += 1;
  }

  private async checkpoint(db: pg.PoolClient, writer: LogWriter): Promise<void> {
    const key = await this.signingKey.get();
    const checkpoint = {
      origin: this.env.AUDIT_LOG_ORIGIN,
      treeSize: writer.size,
      rootHash: writer.root(),
      timestamp: this.clock.date(),
    };
    const note = await signCheckpointWith(checkpoint, key.signer, key.keyName);
    await LogRepository.insertCheckpoint(db, {
      treeSize: checkpoint.treeSize,
      rootHash: checkpoint.rootHash,
      note,
      keyId: key.keyId,
    });
    this.logger.info({ treeSize: checkpoint.treeSize }, 'audit checkpoint signed');
    this.witness.checkpointSigned({ treeSize: checkpoint.treeSize, note });
  }

  private async deadLetter(m: JsMsg, code: string, message: string): Promise<void> {
    this.logger.error({ seq: m.seq, code, problem: message }, 'audit event dead-lettered');
    await publishDeadLetter(this.nc, streams.audit, {
      stream: streams.audit.name,
      subject: m.subject,
      streamSeq: m.seq,
      reason: 'invalid',
      code,
      message,
      data: m.data,
    });
    m.term(`invalid: ${code}`);
  }
}

/** The decoder's columns do not line up with the batch it was given: a bug, never the input's fault. */
function batchMismatch(messages: number, index: number): AppError {
  return new AppError('internal', `the decoded batch's slot ${index} does not fit its ${messages} messages`);
}
