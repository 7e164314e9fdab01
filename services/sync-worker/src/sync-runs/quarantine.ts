import type { DeletedRecord, NormalizedRecord, SkippedItem, SyncBatch } from '@context-gateway/connectors';
import { AppError } from '@context-gateway/errors';

/**
 * Writes a batch; when the Personal Server refuses it because a record is invalid (it
 * checks every record against the catalog before writing any, and one bad record fails the
 * whole write), the batch is halved until each bad record stands alone. That record is
 * quarantined — reported with its reason, its body not kept — and every other record is
 * written. The store's validator stays the one judge; halving costs extra writes only when
 * a batch really holds a bad record (about 2·log2(500) for one in 500). A tombstone whose
 * type or external id is not a string (the write request cannot carry it) is quarantined
 * before anything is written: it has no body, so halving would never isolate it.
 */
export async function writeQuarantining(
  write: (batch: SyncBatch) => Promise<void>,
  batch: SyncBatch,
  quarantine: (item: SkippedItem) => void,
): Promise<void> {
  const deletes = batch.deletes.filter((d) => {
    if (typeof d.type === 'string' && typeof d.externalId === 'string') return true;
    quarantine(invalidTombstone(d));
    return false;
  });
  if (deletes.length !== batch.deletes.length) {
    if (batch.upserts.length === 0 && deletes.length === 0) return;
    batch = { upserts: batch.upserts, deletes };
  }
  try {
    await write(batch);
    return;
  } catch (error) {
    if (!(error instanceof AppError) || error.code !== 'invalid_record') throw error;
    if (batch.upserts.length === 0) throw error; // tombstones left carry no body to be invalid
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

function invalidTombstone(d: DeletedRecord): SkippedItem {
  const field = typeof d.type === 'string' ? 'externalId' : 'type';
  return {
    kind: 'invalid_record',
    resource: `${String(d.type)}/${String(d.externalId)}`,
    reason: `The tombstone cannot be sent: its ${field} is not a string`,
  };
}
