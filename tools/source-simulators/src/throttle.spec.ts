import { TestClock } from '@context-gateway/clock/testing';
import { describe, expect, it } from '@jest/globals';

import { Throttle } from './throttle.js';

describe('Throttle', () => {
  it('refuses every Nth request while the storm lasts, then none', () => {
    const clock = new TestClock(0);
    const t = new Throttle(clock);
    t.start({ everyNth: 3, durationSeconds: 10, retryAfterSeconds: 1 });
    const hits = Array.from({ length: 9 }, () => Boolean(t.check()));
    expect(hits).toEqual([false, false, true, false, false, true, false, false, true]);
    clock.advance(10_001);
    expect(Array.from({ length: 6 }, () => t.check())).toEqual(Array(6).fill(undefined));
    expect(t.describe()).toEqual({ active: false });
  });

  it('without everyNth refuses every request until stopped', () => {
    const t = new Throttle(new TestClock(0));
    t.start({ retryAfterSeconds: 4, status: 429 });
    expect(t.check()).toMatchObject({ retryAfterSeconds: 4, status: 429 });
    expect(t.check()).toBeDefined();
    t.stop();
    expect(t.check()).toBeUndefined();
  });
});
