import type { NormalizedRecord, SkippedItem, SyncBatch } from '../connector.js';

/**
 * What a Personal Server would hold after applying a connector's batches, for connector
 * tests: upserts by key, deletes as tombstones, skips as reported. `apply` and `skip` are
 * the SyncContext's `emit` and `skip`.
 */
export class MemoryStore {
  readonly live = new Map<string, NormalizedRecord>();
  readonly tombstones = new Set<string>();
  readonly skipped: SkippedItem[] = [];
  /** Batches applied and records upserted, to tell an answered-from-cache run from a fetch. */
  batches = 0;
  upserts = 0;

  apply = (batch: SyncBatch): Promise<void> => {
    this.batches += 1;
    for (const r of batch.upserts) {
      this.upserts += 1;
      this.live.set(`${r.type}/${r.externalId}`, r);
      this.tombstones.delete(`${r.type}/${r.externalId}`);
    }
    for (const d of batch.deletes) {
      this.live.delete(`${d.type}/${d.externalId}`);
      this.tombstones.add(`${d.type}/${d.externalId}`);
    }
    return Promise.resolve();
  };

  skip = (item: SkippedItem): void => {
    this.skipped.push(item);
  };

  of(type: string): NormalizedRecord[] {
    return [...this.live.values()].filter((r) => r.type === type);
  }

  count(type: string): number {
    return this.of(type).length;
  }
}
