import type { NormalizedRecord, SkippedItem, SyncBatch } from '@context-gateway/connectors';
import { AppError } from '@context-gateway/errors';

/**
 * Writes a batch; when the Personal Server refuses it because a record is invalid (it
 * checks every record against the catalog before writing any, and one bad record fails the
 * whole write), the batch is halved until each bad record stands alone. That record is
 * quarantined — reported with its reason, its body not kept — and every other record is
 * written. The store's validator stays the one judge; halving costs extra writes only when
 * a batch really holds a bad record (about 2·log2(500) for one in 500).
 */
export async function writeQuarantining(
  write: (batch: SyncBatch) => Promise<void>,
  batch: SyncBatch,
  quarantine: (item: SkippedItem) => void,
): Promise<void> {
  try {
    await write(batch);
    return;
  } catch (error) {
    if (!(error instanceof AppError) || error.code !== 'invalid_record') throw error;
    if (batch.upserts.length === 0) throw error; // tombstones carry no body to be invalid
    if (batch.upserts.length === 1 && batch.deletes.length === 0) {
      quarantine(describe(batch.upserts[0] as NormalizedRecord, error));
      return;
    }
  }
  const upserts = batch.upserts;
  if (upserts.length === 1) {
    await writeQuarantining(write, { upserts, deletes: [] }, quarantine);
  } else {
    const half = Math.ceil(upserts.length / 2);
    await writeQuarantining(write, { upserts: upserts.slice(0, half), deletes: [] }, quarantine);
    await writeQuarantining(write, { upserts: upserts.slice(half), deletes: [] }, quarantine);
  }
  // Tombstones go after the upserts, as the pipeline orders them.
  if (batch.deletes.length) await write({ upserts: [], deletes: batch.deletes });
}

function describe(record: NormalizedRecord, error: AppError): SkippedItem {
  const problems = error.problems.map((p) => `${p.path}: ${p.message}`).join('; ');
  return {
    kind: 'invalid_record',
    resource: `${record.type}/${record.externalId}`,
    reason: problems ? `${error.message} (${problems})` : error.message,
  };
}
