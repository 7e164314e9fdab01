/**
 * Where "now" comes from whenever time decides something: an expiry, a lease, a cursor's
 * age, a rate limit. Code that asks a Clock instead of `Date.now()` can be tested by
 * setting the time instead of waiting for it (STYLE.md §18).
 *
 * An abstract class rather than an interface so that it is its own Nest injection token:
 * `constructor(private readonly clock: Clock)` needs no `@Inject`.
 * Durations measured for logs and metrics (how long a call took) do not decide anything
 * and may keep using `performance.now()`.
 */
export abstract class Clock {
  /** Milliseconds since the Unix epoch. */
  abstract now(): number;

  /** The same instant as a Date (a fresh object each call, safe to keep). */
  date(): Date {
    return new Date(this.now());
  }
}

/** The machine's wall clock. */
class SystemClock extends Clock {
  now(): number {
    return Date.now();
  }
}

/** One shared instance: the system clock has no state. */
export const systemClock: Clock = new SystemClock();
