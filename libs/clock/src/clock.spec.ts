import { describe, expect, it } from '@jest/globals';

import { systemClock } from './clock.js';
import { TestClock } from './testing/test-clock.js';

describe('Clock', () => {
  it('the system clock tells the wall time', () => {
    const before = Date.now();
    const now = systemClock.now();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
    expect(systemClock.date()).toBeInstanceOf(Date);
  });

  it('a test clock moves only when told, and never backwards', () => {
    const clock = new TestClock(new Date('2026-03-01T00:00:00Z'));
    expect(clock.date().toISOString()).toBe('2026-03-01T00:00:00.000Z');
    clock.advance(90_000);
    expect(clock.date().toISOString()).toBe('2026-03-01T00:01:30.000Z');
    expect(() => clock.advance(-1)).toThrow(RangeError);
    clock.set(0);
    expect(clock.now()).toBe(0);
  });
});
