import { randomUUID } from 'node:crypto';

import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Clock } from '@context-gateway/clock';
import { JetStreamPublisher, RpcHandler } from '@context-gateway/messaging';
import {
  events,
  type GetSyncStateRequest,
  type ImportRecordsRequest,
  type NotifyWebhookRequest,
  type RequestSyncRequest,
  rpc,
  SyncReason,
  SyncRunState,
} from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { jobIdFor } from './job-ids.js';
import { RecordWriter } from './record-writer.js';
import { SyncStateRepository } from './sync-state.repository.js';

const STATE = {
  idle: SyncRunState.IDLE,
  queued: SyncRunState.QUEUED,
  running: SyncRunState.RUNNING,
  failed: SyncRunState.FAILED,
  needs_reauth: SyncRunState.NEEDS_REAUTH,
} as const;
const decoder = new TextDecoder();

/** `sync.v1.*`: what the gateway asks of the sync-worker (after its own grant check). */
@Controller()
export class SyncRunsHandler {
  constructor(
    private readonly states: SyncStateRepository,
    private readonly writer: RecordWriter,
    private readonly publisher: JetStreamPublisher,
    private readonly clock: Clock,
  ) {}

  /** Sync now: queue a job and show the connection as queued (unless a run is going on). */
  @RpcHandler(rpc.sync.requestSync)
  async requestSync(@Payload() m: RequestSyncRequest) {
    const jobId = randomUUID();
    await this.publisher.publish(events.syncJobRequested, {
      jobId,
      connectionId: m.connectionId,
      reason: m.reason,
      requestedAt: timestampFromDate(this.clock.date()),
    });
    await this.states.markQueued(m.connectionId);
    return { jobId };
  }

  /**
   * A verified webhook: one WEBHOOK job per connection of the accounts it names. The job id
   * comes from the delivery id, so the source's redelivery of the same event queues nothing.
   */
  @RpcHandler(rpc.sync.notifyWebhook)
  async notifyWebhook(@Payload() m: NotifyWebhookRequest) {
    const connections = await this.states.byAccounts(m.integration, m.accountIds);
    await Promise.all(
      connections.map((connectionId) =>
        this.publisher.publish(events.syncJobRequested, {
          jobId: jobIdFor(`webhook:${m.integration}:${m.deliveryId}:${connectionId}`),
          connectionId,
          reason: SyncReason.WEBHOOK,
          requestedAt: timestampFromDate(this.clock.date()),
        }),
      ),
    );
    return { jobsQueued: connections.length };
  }

  @RpcHandler(rpc.sync.getState)
  async getState(@Payload() m: GetSyncStateRequest) {
    const s = await this.states.get(m.connectionId);
    // A connection no job ever reached is simply waiting for its first sync.
    if (!s) return { state: SyncRunState.QUEUED, recordsSynced: 0n };
    // A claim whose lease ran out belongs to a worker that died: its job will be redelivered.
    const state =
      s.state === 'running' && s.leaseUntil && s.leaseUntil.getTime() < this.clock.now()
        ? SyncRunState.QUEUED
        : STATE[s.state];
    return {
      state,
      lastError: s.lastError ?? '',
      recordsSynced: BigInt(s.recordsSynced),
      ...(s.lastSuccessAt ? { lastSuccessAt: timestampFromDate(s.lastSuccessAt) } : {}),
      ...(s.nextRunAt ? { nextRunAt: timestampFromDate(s.nextRunAt) } : {}),
      lastRunSkipped: storedSkips(s.lastRunSkipped),
      lastRunSkippedTotal: s.lastRunSkippedTotal,
    };
  }

  /** One batch of an upload: written to the Personal Server (idempotently) and counted. */
  @RpcHandler(rpc.sync.importRecords)
  async importRecords(@Payload() m: ImportRecordsRequest) {
    const now = this.clock.date();
    const res = await this.writer.write(
      { userId: m.userId, connectionId: m.connectionId, integration: m.integration, syncedAt: now },
      {
        upserts: m.records.map((r) => ({
          type: r.type,
          externalId: r.externalId,
          data: JSON.parse(decoder.decode(r.dataJson)) as Record<string, unknown>,
          ...(r.sourceUpdatedAt ? { occurredAt: timestampDate(r.sourceUpdatedAt).toISOString() } : {}),
        })),
        deletes: [],
      },
    );
    await this.states.recordImport(m.connectionId, m.integration, res.written, now);
    return { written: res.written, unchanged: res.unchanged };
  }
}

/** The skips a run stored (JSON written by SyncStateRepository.complete); anything else is ignored. */
function storedSkips(json: unknown): { kind: string; resource: string; reason: string }[] {
  if (!Array.isArray(json)) return [];
  return json.flatMap((k: unknown) => {
    const { kind, resource, reason } = (k ?? {}) as Record<string, unknown>;
    return typeof kind === 'string' && typeof resource === 'string' && typeof reason === 'string'
      ? [{ kind, resource, reason }]
      : [];
  });
}
