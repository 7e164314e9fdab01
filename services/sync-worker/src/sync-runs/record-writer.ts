import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { SyncBatch } from '@context-gateway/connectors';
import { RpcClient } from '@context-gateway/messaging';
import { MAX_RECORDS_PER_WRITE, rpc } from '@context-gateway/proto';
import { Injectable } from '@nestjs/common';

export interface WriteTarget {
  userId: string;
  connectionId: string;
  integration: string;
  /** When the run read the source: the apps' freshness mark. */
  syncedAt: Date;
}

export interface WriteResult {
  written: number;
  unchanged: number;
  tombstoned: number;
}

const encoder = new TextEncoder();

/**
 * Writes normalized records to the owning Personal Server (`ps.v1.write_records`: any shard
 * answers and forwards to the owner). The write is an idempotent upsert keyed by
 * (connection, type, external id), so replaying a batch after a crash changes nothing.
 */
@Injectable()
export class RecordWriter {
  constructor(private readonly rpcClient: RpcClient) {}

  async write(target: WriteTarget, batch: SyncBatch): Promise<WriteResult> {
    const records = [
      ...batch.upserts.map((r) => {
        // Parsed once (a Date, then its time checked), not once to check and once to convert.
        const occurred = r.occurredAt ? new Date(r.occurredAt) : undefined;
        return {
          type: r.type,
          externalId: r.externalId,
          dataJson: encoder.encode(JSON.stringify(r.data)),
          ...(occurred && !Number.isNaN(occurred.getTime()) ? { sourceUpdatedAt: timestampFromDate(occurred) } : {}),
        };
      }),
      ...batch.deletes.map((d) => ({ type: d.type, externalId: d.externalId, deleted: true })),
    ];
    const total: WriteResult = { written: 0, unchanged: 0, tombstoned: 0 };
    for (let i = 0; i < records.length; i += MAX_RECORDS_PER_WRITE) {
      const res = await this.rpcClient.request(rpc.personalServer.writeRecords, {
        userId: target.userId,
        connectionId: target.connectionId,
        integration: target.integration,
        records: records.slice(i, i + MAX_RECORDS_PER_WRITE),
        syncedAt: timestampFromDate(target.syncedAt),
      });
      total.written += res.written;
      total.unchanged += res.unchanged;
      total.tombstoned += res.tombstoned;
    }
    return total;
  }
}
