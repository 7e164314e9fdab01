import type { DeletedRecord, NormalizedRecord, SyncBatch } from '@context-gateway/connectors';

/**
 * Between a connector and the Personal Server: gathers upserts into full writes (the
 * shard's per-write maximum) and keeps a few writes in flight while the connector fetches
 * the next pages, so the source and the store work at the same time. Deletions wait for
 * every earlier write (a tombstone must land after an upsert of the same item), and
 * `drain()` resolves only when everything handed over is committed — the run stores its
 * cursor after that, never before.
 */
export class WritePipeline {
  private upserts: NormalizedRecord[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private failure: Error | undefined;

  constructor(
    private readonly write: (batch: SyncBatch) => Promise<void>,
    private readonly batchSize: number,
    private readonly maxInFlight: number,
  ) {}

  /** Takes a connector's batch; resolves when there is room for more. */
  async add(batch: SyncBatch): Promise<void> {
    this.throwIfFailed();
    this.upserts.push(...batch.upserts);
    while (this.upserts.length >= this.batchSize) await this.send(this.upserts.splice(0, this.batchSize), []);
    if (batch.deletes.length) {
      await this.flushUpserts();
      await this.settle();
      await this.send([], batch.deletes);
      await this.settle();
    }
  }

  /** Everything handed over, committed. */
  async drain(): Promise<void> {
    await this.flushUpserts();
    await this.settle();
  }

  private async flushUpserts(): Promise<void> {
    if (this.upserts.length) await this.send(this.upserts.splice(0), []);
  }

  private async send(upserts: NormalizedRecord[], deletes: DeletedRecord[]): Promise<void> {
    while (this.inFlight.size >= this.maxInFlight) await Promise.race(this.inFlight);
    this.throwIfFailed();
    const p: Promise<void> = this.write({ upserts, deletes })
      .catch((error: unknown) => {
        this.failure ??= error instanceof Error ? error : new Error('The write failed', { cause: error });
      })
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  private async settle(): Promise<void> {
    await Promise.all([...this.inFlight]);
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}
