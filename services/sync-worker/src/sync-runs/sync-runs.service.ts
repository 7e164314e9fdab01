import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';

import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Clock } from '@context-gateway/clock';
import { connectorFor, type SkippedItem, type SyncBatch } from '@context-gateway/connectors';
import { AppError } from '@context-gateway/errors';
import { type DeliveryInfo, JetStreamPublisher } from '@context-gateway/messaging';
import { events, type SyncJob, SyncRunOutcome } from '@context-gateway/proto';
import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import { writeQuarantining } from './quarantine.js';
import { RecordWriter } from './record-writer.js';
import { SourceCredentials } from './source-credentials.js';
import { SyncStateRepository } from './sync-state.repository.js';
import { WritePipeline } from './write-pipeline.js';

/** Skips stored per run: enough to act on, bounded so one broken source cannot bloat the row. */
const MAX_SKIPS_KEPT = 100;

/** Counting semaphore: at most `limit` holders at once, FIFO. */
class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly limit: number) {}
  async acquire(): Promise<() => void> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    };
  }
}

export type JobOutcome = 'synced' | 'coalesced' | 'needs_reauth' | 'awaiting_import' | 'connection_removed';

/**
 * Runs one sync job: claim the connection, get its token from the broker, run the
 * integration's connector from the stored cursor, write each batch to the Personal Server
 * as it comes, then store the new cursor. The cursor moves only after every write of the
 * run is committed, so a run that dies half-way is repeated from the old cursor by the
 * next delivery — idempotent upserts make the repeat add nothing twice.
 */
@Injectable()
export class SyncRunsService {
  /** This process, as lease owner: host, pid and a random part (two workers on one host differ). */
  readonly workerId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly perSource = new Map<string, Semaphore>();

  constructor(
    private readonly states: SyncStateRepository,
    private readonly credentials: SourceCredentials,
    private readonly writer: RecordWriter,
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly publisher: JetStreamPublisher,
  ) {}

  /**
   * sync.v1.events.run_finished, after the run's outcome is committed (the broker turns it into
   * applications' webhooks). A publish that fails is logged: the run itself stands.
   */
  private async announce(
    connectionId: string,
    integration: string,
    outcome: { completed: true; records: number; skipped: number } | { completed: false; errorCode: string },
  ): Promise<void> {
    await this.publisher
      .publish(events.syncRunFinished, {
        eventId: randomUUID(),
        connectionId,
        integration,
        outcome: outcome.completed ? SyncRunOutcome.COMPLETED : SyncRunOutcome.FAILED,
        records: outcome.completed ? BigInt(outcome.records) : 0n,
        skippedTotal: outcome.completed ? outcome.skipped : 0,
        errorCode: outcome.completed ? '' : outcome.errorCode,
        finishedAt: timestampFromDate(this.clock.date()),
      })
      .catch((error: unknown) =>
        this.logger.warn(
          { connectionId, code: AppError.from(error).code },
          'sync outcome not announced (no webhook for this run)',
        ),
      );
  }

  async run(
    job: SyncJob,
    delivery: Pick<DeliveryInfo, 'deliveryCount' | 'working'>,
    maxDeliver: number,
  ): Promise<JobOutcome> {
    const connectionId = job.connectionId;
    // One owner per run, not per process: two jobs for one connection landing in the same
    // worker must not both hold the claim (the second coalesces into a rerun instead).
    const owner = `${this.workerId}:${randomUUID().slice(0, 8)}`;
    const claimed = await this.states.claim(connectionId, owner, this.env.SYNC_LEASE_MS);
    if (!claimed) {
      // Someone is syncing this connection right now: it runs once more when done. If its
      // lease ended in between, try the claim again rather than drop the job.
      if (await this.states.requestRerun(connectionId)) return 'coalesced';
      throw new AppError('conflict', 'The connection was being synced; retrying');
    }

    this.logger.info({ connectionId, reason: job.reason, attempt: delivery.deliveryCount }, 'sync run started');
    // A run whose claim was lost (this process stalled past its lease and another worker
    // took the connection over) stops rather than race the new owner.
    const lost = new AbortController();
    const heartbeat = setInterval(
      () => {
        delivery.working();
        this.states
          .renew(connectionId, owner, this.env.SYNC_LEASE_MS)
          .then(
            (held) =>
              held || lost.abort(new AppError('conflict', 'The claim on the connection was lost to another worker')),
          )
          .catch((err) => this.logger.warn({ err, connectionId }, 'lease renewal failed'));
      },
      Math.max(250, Math.floor(this.env.SYNC_LEASE_MS / 3)),
    );
    let integration: string | undefined;
    try {
      let again = true;
      let cursor = claimed.cursor;
      while (again) {
        const credential = await this.credentials.get(connectionId);
        integration = credential.integration;
        const connector = connectorFor(integration);
        if (!connector)
          throw new AppError(
            'validation_failed',
            `Integration "${integration}" is not synced by pulling (it is imported)`,
          );
        const release = await this.slot(integration).acquire();
        const syncedAt = this.clock.date();
        let runRecords = 0;
        let nextCursor: unknown;
        let sourceAccountId: string | undefined;
        // One bad item never fails the run: what the connector or the store left out is
        // kept here (the first MAX_SKIPS_KEPT) and stored with the run's success.
        const skipped: SkippedItem[] = [];
        let skippedTotal = 0;
        const skip = (item: SkippedItem) => {
          skippedTotal++;
          if (skipped.length < MAX_SKIPS_KEPT) skipped.push(item);
        };
        try {
          const write = async (batch: SyncBatch) => {
            const res = await this.writer.write(
              { userId: credential.userId, connectionId, integration: credential.integration, syncedAt },
              batch,
            );
            const changed = res.written + res.tombstoned;
            runRecords += changed;
            // Counted per committed write, so a run that dies half-way still counts what it wrote.
            await this.states.addRecords(connectionId, changed);
            delivery.working();
          };
          const pipeline = new WritePipeline(
            // A record the catalog refuses is quarantined, never its batch.
            (batch: SyncBatch) => writeQuarantining(write, batch, skip),
            this.env.SYNC_WRITE_BATCH,
            this.env.SYNC_WRITES_IN_FLIGHT,
          );
          nextCursor = await connector.sync(
            {
              baseUrl: credential.apiBaseUrl,
              tokens: this.credentials.tokenSource(connectionId, credential),
              skip,
              signal: lost.signal,
              http: { maxWaitMs: this.env.SYNC_SOURCE_MAX_WAIT_MS, clock: this.clock },
              emit: async (batch: SyncBatch) => {
                lost.signal.throwIfAborted();
                sourceAccountId ??= batch.upserts.find((r) => r.type === 'profile')?.externalId;
                await pipeline.add(batch);
              },
            },
            cursor ?? null,
          );
          // The cursor moves only once every write of the run is committed.
          await pipeline.drain();
        } finally {
          release();
        }
        again = await this.states.completeRun(connectionId, owner, {
          cursor: nextCursor,
          integration,
          completedAt: this.clock.date(),
          nextRunAt: new Date(this.clock.now() + this.env.SYNC_INTERVAL_MS),
          ...(sourceAccountId ? { sourceAccountId } : {}),
          skipped,
          skippedTotal,
        });
        cursor = nextCursor as typeof cursor;
        await this.announce(connectionId, integration, { completed: true, records: runRecords, skipped: skippedTotal });
        this.logger.info(
          { connectionId, integration, records: runRecords, skipped: skippedTotal, reason: job.reason, rerun: again },
          'sync run finished',
        );
      }
      return 'synced';
    } catch (thrown) {
      const error = AppError.from(thrown);
      const nextRunAt = new Date(this.clock.now() + this.env.SYNC_INTERVAL_MS);
      const safe = `${error.code}: ${error.message}`;
      if (error.code === 'no_source_api') {
        // A file-export source (netflix): nothing to pull, ever. Not a failure: the connection
        // waits for uploads, and with no next run the scheduler never picks it up again.
        await this.states.awaitImport(connectionId, owner);
        this.logger.info({ connectionId }, 'source has no API: awaiting an uploaded export, not polled');
        return 'awaiting_import';
      }
      if (error.code === 'connection_not_found') {
        // The broker no longer has the connection (the user deleted it): nothing will ever
        // sync again, so its state is dropped and the scheduler stops queueing it.
        await this.states.forget(connectionId, owner);
        this.logger.info({ connectionId }, 'connection removed at the broker; its sync state is dropped');
        return 'connection_removed';
      }
      if (error.code === 'connection_needs_reauth') {
        // Retrying cannot help until the user connects again: ack the job, show the state.
        await this.states.failRun(connectionId, owner, {
          state: 'needs_reauth',
          error: safe,
          nextRunAt,
          ...(integration ? { integration } : {}),
        });
        this.logger.warn({ connectionId, integration }, 'connection needs reauthorization; sync stopped');
        return 'needs_reauth';
      }
      const lastTry = delivery.deliveryCount >= maxDeliver;
      await this.states.failRun(connectionId, owner, {
        state: lastTry ? 'failed' : 'queued',
        error: safe,
        nextRunAt,
        ...(integration ? { integration } : {}),
      });
      if (lastTry && integration)
        await this.announce(connectionId, integration, { completed: false, errorCode: error.code });
      throw error;
    } finally {
      clearInterval(heartbeat);
    }
  }

  private slot(integration: string): Semaphore {
    let s = this.perSource.get(integration);
    if (!s) this.perSource.set(integration, (s = new Semaphore(this.env.SYNC_SOURCE_CONCURRENCY)));
    return s;
  }
}
