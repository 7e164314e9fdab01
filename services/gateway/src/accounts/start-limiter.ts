import type { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';

/**
 * Bounds how many passkey ceremonies one client address may start per minute. Starting a
 * ceremony needs no account and stores a challenge row, so without a bound one client
 * could fill identity's table as fast as it can send requests. A fixed one-minute window
 * per address, in this gateway process's memory: crude, cheap, and enough to make the
 * table's growth proportional to the number of attacking addresses.
 */
export class CeremonyStartLimiter {
  private windowStart = 0;
  private readonly counts = new Map<string, number>();

  constructor(
    private readonly perMinute: number,
    private readonly clock: Clock,
  ) {}

  /** Counts one start for `client`; throws `rate_limited` past the limit. */
  take(client: string): void {
    const now = this.clock.now();
    if (now - this.windowStart >= 60_000) {
      this.windowStart = now;
      this.counts.clear();
    }
    const count = (this.counts.get(client) ?? 0) + 1;
    this.counts.set(client, count);
    if (count > this.perMinute) {
      const retryAfterSeconds = Math.max(1, Math.ceil((this.windowStart + 60_000 - now) / 1_000));
      throw new AppError(
        'rate_limited',
        `Too many passkey ceremonies started from this address; try again in ${retryAfterSeconds} s`,
      );
    }
  }
}
