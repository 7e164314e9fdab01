import { describe, expect, it, jest } from '@jest/globals';

import { sweepExpiredRateLimits } from './rate-limits.js';

// The gateway's own sweep of expired rate-limit counters: on its schedule, an hour past
// expiry, and never again once stopped (a query after the pool ended is what the library's
// own timer used to do).
describe('sweepExpiredRateLimits', () => {
  it('deletes counters an hour past expiry every five minutes, and stops for good', () => {
    jest.useFakeTimers({ now: 10_000_000 });
    try {
      const calls: unknown[][] = [];
      const pool = {
        query: (text: string, values: unknown[]) => {
          calls.push([text, ...values]);
          return Promise.resolve();
        },
      };
      const sweep = sweepExpiredRateLimits(pool, () => undefined);
      jest.advanceTimersByTime(299_999);
      expect(calls).toEqual([]);
      jest.advanceTimersByTime(1);
      expect(calls).toEqual([['DELETE FROM rate_limits WHERE expire < $1', 10_300_000 - 3_600_000]]);
      sweep.stop();
      jest.advanceTimersByTime(3_600_000);
      expect(calls).toHaveLength(1);
    } finally {
      jest.useRealTimers();
    }
  });

  it('reports a failed delete and keeps sweeping', async () => {
    jest.useFakeTimers();
    try {
      const errors: unknown[] = [];
      const pool = { query: () => Promise.reject(new Error('pg down')) };
      const sweep = sweepExpiredRateLimits(pool, (e) => errors.push(e));
      await jest.advanceTimersByTimeAsync(600_000);
      expect(errors).toHaveLength(2);
      sweep.stop();
    } finally {
      jest.useRealTimers();
    }
  });
});
