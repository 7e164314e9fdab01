import { Clock } from '../clock.js';

/**
 * A clock that moves only when the test says so. Starts at a fixed, recognisable instant
 * unless told otherwise, so expiry tests never depend on when they run.
 */
export class TestClock extends Clock {
  #now: number;

  constructor(start: number | Date = Date.UTC(2026, 0, 1, 12, 0, 0)) {
    super();
    this.#now = typeof start === 'number' ? start : start.getTime();
  }

  now(): number {
    return this.#now;
  }

  /** Moves the clock forward (never backward: real clocks used for expiry do not). */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`TestClock.advance needs a non-negative duration, got ${ms}`);
    this.#now += ms;
  }

  /** Sets the clock to an instant, for tests that start from a stored timestamp. */
  set(instant: number | Date): void {
    this.#now = typeof instant === 'number' ? instant : instant.getTime();
  }
}
