import { consumeEvents, type RunningConsumer } from '@context-gateway/messaging';
import { consumers, events } from '@context-gateway/proto';
import { LOGGER, NATS_CONNECTION, SERVICE_ENV } from '@context-gateway/service-kit';
import type { NatsConnection } from '@nats-io/transport-node';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import { SyncMetrics } from './sync.metrics.js';
import { SyncRunsService } from './sync-runs.service.js';

/** Durable consumer name shared by every sync-worker: JetStream hands each job to one of them. */
const SYNC_JOBS_DURABLE = consumers.syncJobs.durable;

/**
 * Pulls jobs from SYNC_JOBS (a work queue). A job is acked only after its run committed
 * (records written, cursor stored); a failure is redelivered with jittered back-off up to
 * SYNC_JOB_MAX_DELIVER times, then dead-lettered with the connection shown as `failed`. A
 * worker killed mid-job never acks: JetStream redelivers after the ack wait.
 */
@Injectable()
export class SyncJobsConsumer implements OnApplicationBootstrap, OnApplicationShutdown {
  private consumer: RunningConsumer | undefined;

  constructor(
    private readonly runs: SyncRunsService,
    private readonly syncMetrics: SyncMetrics,
    @Inject(NATS_CONNECTION) private readonly nc: NatsConnection,
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const maxDeliver = this.env.SYNC_JOB_MAX_DELIVER;
    this.consumer = await consumeEvents(
      this.nc,
      events.syncJobRequested,
      {
        durable: SYNC_JOBS_DURABLE,
        maxDeliver,
        ackWaitMs: this.env.SYNC_JOB_ACK_WAIT_MS,
        concurrency: this.env.SYNC_CONCURRENCY,
        retryBaseMs: this.env.SYNC_RETRY_BASE_MS,
        retryMaxMs: this.env.SYNC_RETRY_MAX_MS,
      },
      async (job, delivery) => {
        await this.syncMetrics.observe(job, () => this.runs.run(job, delivery, maxDeliver));
      },
      this.logger,
    );
  }

  async onApplicationShutdown(): Promise<void> {
    await this.consumer?.stop();
  }
}
