/**
 * One timer for many deadlines (performance.now() times), armed for the earliest: instead of
 * a `setTimeout` per waiting request. When it fires it calls `sweep(now)`, which fails what is
 * due and answers the next deadline still waited for (Infinity: none), and re-arms for that.
 * RequestMux bounds every RPC's reply with it; the gateway its credential checks' waits.
 * It never keeps the process alive on its own (unref): what is waited for does.
 */
/** The longest delay setTimeout takes as given (a signed 32-bit ms count). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export class EarliestDeadline {
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** When the armed timer fires; Infinity when none is armed. */
  private at = Number.POSITIVE_INFINITY;

  constructor(private readonly sweep: (now: number) => number) {}

  /** A deadline was added: fire no later than `at`. */
  add(at: number): void {
    if (at < this.at) this.arm(at);
  }

  /** Nothing is waited for any more: disarm. */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.at = Number.POSITIVE_INFINITY;
  }

  private arm(at: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.at = at;
    // Node runs a delay over 2^31-1 ms after 1 ms: capped, a far deadline is swept after ~24
    // days (and re-armed, not yet due) instead of every millisecond.
    const delay = Math.min(MAX_TIMEOUT_MS, Math.max(0, Math.ceil(at - performance.now())));
    this.timer = setTimeout(() => this.fire(), delay);
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.at = Number.POSITIVE_INFINITY;
    // A sweep that throws still leaves a timer armed: at once, to sweep what it did not reach
    // (the sweeps remove what they fail before failing it), and so on to the next deadline.
    // Without it, every later deadline would go unfailed until the next add().
    const now = performance.now();
    let next = now;
    try {
      next = this.sweep(now);
    } finally {
      if (next !== Number.POSITIVE_INFINITY) this.arm(next);
    }
  }
}
