import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';

import { EarliestDeadline } from './earliest-deadline.js';

// Fake timers fake performance.now too: deadlines move only when the test says so.
describe('EarliestDeadline', () => {
  beforeEach(() => void jest.useFakeTimers());
  afterEach(() => void jest.useRealTimers());

  it('stays armed for the deadlines left when a sweep throws', () => {
    const t0 = performance.now();
    // Deadlines in order; the first one's failure throws (a caller's callback gone wrong).
    const waiting = [t0 + 100, t0 + 150, t0 + 300];
    const failed: number[] = [];
    const timer = new EarliestDeadline((now) => {
      while (waiting.length > 0 && waiting[0]! <= now) {
        // Removed before it is failed, as RequestMux's and Deadlines' sweeps do.
        const at = waiting.shift()!;
        if (at === t0 + 100) throw new Error('a failing callback');
        failed.push(at - t0);
      }
      return waiting[0] ?? Number.POSITIVE_INFINITY;
    });
    timer.add(t0 + 100);

    expect(() => jest.advanceTimersByTime(100)).toThrow('a failing callback');
    // Still armed: what the throwing sweep did not reach is failed, then the next deadline.
    expect(jest.getTimerCount()).toBe(1);
    jest.advanceTimersByTime(50);
    expect(failed).toEqual([150]);
    jest.advanceTimersByTime(150);
    expect(failed).toEqual([150, 300]);
    expect(jest.getTimerCount()).toBe(0);
  });
});
