/** Bytes of payload one writer batch takes at most (about `batchSize` plain events; fewer batch messages). */
const BYTES_PER_EVENT_BUDGET = 1_024;

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
    return this.messages.splice(0, count);
  }

  /** Everything still waiting (to be given back to the stream), the queue left empty. */
  drain(): M[] {
    const all = this.messages;
    this.messages = [];
    this.bytes = 0;
    return all;
  }
}
