/** Bytes of payload one writer batch takes at most (about `batchSize` plain events; fewer batch messages). */
const BYTES_PER_EVENT_BUDGET = 1_024;

/** Batches' worth of payload the queue holds before the pump stops taking from the stream. */
const QUEUED_BUDGETS = 2;

/**
 * The messages pulled from the AUDIT stream and not yet in a writer batch, with their
 * payload bytes counted, so the writer can tell when a whole batch is waiting: `batchSize`
 * messages, or the payload budget of `batchSize` events, whichever comes first. A
 * group-commit message carries many events, so counting messages alone would see a whole
 * batch only once thousands of such messages (hundreds of thousands of events) had
 * arrived, and the writer would wait out AUDIT_BATCH_WAIT_MS before every batch and never
 * decode one ahead — under group commit, the wait, not the work, set the append rate.
 */
export class WriterQueue<M extends { data: Uint8Array }> {
  private messages: M[] = [];
  private bytes = 0;
  private readonly budget: number;
  private closed = false;
  private roomWaiters: (() => void)[] = [];

  constructor(private readonly batchSize: number) {
    this.budget = batchSize * BYTES_PER_EVENT_BUDGET;
  }

  get length(): number {
    return this.messages.length;
  }

  push(message: M): void {
    this.messages.push(message);
    this.bytes += message.data.length;
  }

  /** A whole batch is waiting: take() would not be cut short by the queue running out. */
  get full(): boolean {
    return this.messages.length >= this.batchSize || this.bytes >= this.budget;
  }

  /**
   * Resolves once the queue holds less than two batches' payload (at once if it does), or is
   * closed. The pull client asks the stream for more only as its messages are taken, so a
   * pump that waits for this before taking the next one keeps what is pulled and not yet
   * written bounded — about two batches plus one pull's worth — where taking every message
   * as it arrives would pull up to max_ack_pending group-commit messages (hundreds of MB).
   */
  room(): Promise<void> {
    if (this.closed || this.bytes < QUEUED_BUDGETS * this.budget) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Releases the pump for good (the writer session is ending): room() no longer waits. */
  close(): void {
    this.closed = true;
    this.release();
  }

  /**
   * The next writer batch: up to `batchSize` messages, fewer when they are group-commit
   * batches carrying many events each, so one transaction stays about `batchSize` events
   * (and its memory bounded) whatever the messages hold. Always one at least, if any wait.
   */
  take(): M[] {
    let bytes = 0;
    let count = 0;
    while (count < this.messages.length && count < this.batchSize) {
      bytes += this.messages[count]?.data.length ?? 0;
      count += 1;
      if (bytes >= this.budget) break;
    }
    this.bytes -= bytes;
    const batch = this.messages.splice(0, count);
    this.release();
    return batch;
  }

  /** Everything still waiting (to be given back to the stream), the queue left empty. */
  drain(): M[] {
    const all = this.messages;
    this.messages = [];
    this.bytes = 0;
    this.release();
    return all;
  }

  private release(): void {
    if (!this.closed && this.bytes >= QUEUED_BUDGETS * this.budget) return;
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
