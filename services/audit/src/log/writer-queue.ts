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
  private batchWaiter: (() => void) | undefined;

  constructor(private readonly batchSize: number) {
    this.budget = batchSize * BYTES_PER_EVENT_BUDGET;
  }

  get length(): number {
    return this.messages.length;
  }

  /** Adds a message; a writer waiting in waitForBatch() is woken once a whole batch is waiting. */
  push(message: M): void {
    this.messages.push(message);
    this.bytes += message.data.length;
    if (this.full) this.wake();
  }

  /** A whole batch is waiting: take() would not be cut short by the queue running out. */
  get full(): boolean {
    return this.messages.length >= this.batchSize || this.bytes >= this.budget;
  }

  /**
   * Resolves once a whole batch is waiting (at once if one is), after `ms`, or on wake():
   * the writer's wait for its next batch. One waiter at a time (the writer loop).
   */
  waitForBatch(ms: number): Promise<void> {
    if (this.full || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.batchWaiter = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.batchWaiter = done;
    });
  }

  /** Ends a waitForBatch() at once: the stream's messages ended, or the writer session is ending. */
  wake(): void {
    this.batchWaiter?.();
  }

  /**
   * Resolves once the queue holds less than two batches' payload (at once if it does), or is
   * closed. The pump (BoundedPull) waits on it before each pull and asks for no more than
   * roomBytes() (at least one message's worth), so what is pulled and not yet written stays
   * about two batches' payload plus one pull, in bytes — not the consumer's max_ack_pending,
   * a count of messages that group-commit messages of ~100 KB each would make hundreds of MB.
   */
  room(): Promise<void> {
    if (this.closed || this.bytes < QUEUED_BUDGETS * this.budget) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Payload bytes the queue takes before room() holds the pump back (0 when it already does). */
  roomBytes(): number {
    return Math.max(0, QUEUED_BUDGETS * this.budget - this.bytes);
  }

  /** Releases the pump for good (the writer session is ending): room() no longer waits. */
  close(): void {
    this.closed = true;
    this.wake();
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
