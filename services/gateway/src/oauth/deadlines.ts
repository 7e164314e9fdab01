import { EarliestDeadline } from '@context-gateway/messaging';

/** One wait bounded by a deadline: how to fail it once its time is up. */
interface Waiter {
  at: number;
  late: () => void;
}

/**
 * Bounds waits with ONE timer for all of them, armed for the earliest deadline, instead of a
 * `setTimeout`, a timeout promise, a `Promise.race` and a `finally` per wait. The credential
 * check waits on every request for the CONTROL stream's head (shared by the turn's requests);
 * its fail-closed deadline was the only timer a records query armed in the gateway, and the
 * race's promises each ran AsyncLocalStorage's promise hooks.
 *
 * A wait that settles in time leaves its entry behind only until it settles (a Set delete);
 * the timer (EarliestDeadline, the class RequestMux uses too) fires at most once per earliest deadline, fails
 * what is due and re-arms for the next.
 *
 * Every caller today bounds its wait with the same `ms` (POLICY_FRESHNESS_TIMEOUT_MS), so the
 * Set's insertion order is deadline order and a sweep stops at the first wait not yet due
 * instead of walking every waiting request. Should a wait ever be added with an earlier
 * deadline than one already waiting, that order is gone and sweeps walk them all again,
 * until nothing is waiting.
 */
export class Deadlines {
  private readonly waiting = new Set<Waiter>();
  private readonly timer = new EarliestDeadline((now) => this.sweep(now));
  /** The waits were added in deadline order (none due before one added earlier). */
  private ordered = true;
  /** The latest deadline added. */
  private last = Number.NEGATIVE_INFINITY;

  /** `work`'s outcome, or `late()`'s error once `ms` have passed; `failed` maps `work`'s rejection. */
  within<T>(work: Promise<T>, ms: number, late: () => Error, failed: (error: unknown) => Error): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = { at: performance.now() + ms, late: () => reject(late()) };
      if (this.waiting.size === 0) this.ordered = true;
      else if (waiter.at < this.last) this.ordered = false;
      this.last = waiter.at;
      this.waiting.add(waiter);
      this.timer.add(waiter.at);
      work.then(
        (value) => {
          this.waiting.delete(waiter);
          resolve(value);
        },
        (error: unknown) => {
          this.waiting.delete(waiter);
          reject(failed(error));
        },
      );
    });
  }

  /** Fails the waits due by `now`; the next deadline (Infinity: none). */
  private sweep(now: number): number {
    let next = Number.POSITIVE_INFINITY;
    for (const waiter of this.waiting) {
      if (waiter.at <= now) {
        this.waiting.delete(waiter);
        waiter.late();
      } else if (this.ordered) {
        // In deadline order: this is the earliest left, and none after it is due.
        return waiter.at;
      } else if (waiter.at < next) next = waiter.at;
    }
    return next;
  }
}
