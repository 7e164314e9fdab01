import type { DeletedRecord, NormalizedRecord, SyncBatch } from '@context-gateway/connectors';
import { RpcClient } from '@context-gateway/messaging';
import { MAX_RECORDS_PER_WRITE, rpc } from '@context-gateway/proto';
import { Injectable } from '@nestjs/common';

import { encodeWriteRecords, type WriteTarget } from './write-request.js';

export interface WriteResult {
  written: number;
  unchanged: number;
  tombstoned: number;
}

/**
 * Writes normalized records to the owning Personal Server (`ps.v1.write_records`: any shard
 * answers and forwards to the owner). The write is an idempotent upsert keyed by
 * (connection, type, external id), so replaying a batch after a crash changes nothing.
 */
@Injectable()
export class RecordWriter {
  constructor(private readonly rpcClient: RpcClient) {}

  async write(target: WriteTarget, batch: SyncBatch): Promise<WriteResult> {
    const total: WriteResult = { written: 0, unchanged: 0, tombstoned: 0 };
    for (const { upserts, deletes } of writeChunks(batch.upserts, batch.deletes, MAX_RECORDS_PER_WRITE)) {
      const request = encodeWriteRecords(target, upserts, deletes);
      const res = await this.rpcClient.request(rpc.personalServer.writeRecords, request);
      total.written += res.written;
      total.unchanged += res.unchanged;
      total.tombstoned += res.tombstoned;
    }
    return total;
  }
}

/**
 * A batch cut into writes of at most `max` records: upserts first, then tombstones, so one
 * write may hold the last upserts and the first tombstones. No write is empty.
 */
export function writeChunks(
  upserts: readonly NormalizedRecord[],
  deletes: readonly DeletedRecord[],
  max: number,
): { upserts: NormalizedRecord[]; deletes: DeletedRecord[] }[] {
  const chunks: { upserts: NormalizedRecord[]; deletes: DeletedRecord[] }[] = [];
  for (let i = 0; i < upserts.length + deletes.length; i += max) {
    const end = i + max;
    chunks.push({
      upserts: upserts.slice(i, end),
      deletes: deletes.slice(Math.max(0, i - upserts.length), Math.max(0, end - upserts.length)),
    });
  }
  return chunks;
}
