import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';

import { EarliestDeadline } from './earliest-deadline.js';

/** A sweep with no deadline left to wait for, counting its calls. */
function counting(): { sweep: (now: number) => number; calls: number[] } {
  const calls: number[] = [];
  return { calls, sweep: (now) => (calls.push(now), Number.POSITIVE_INFINITY) };
}

// Fake timers fake performance.now too: deadlines move only when the test says so.
describe('EarliestDeadline', () => {
  beforeEach(() => void jest.useFakeTimers());
  afterEach(() => void jest.useRealTimers());

  it('re-arms for an earlier deadline, not for a later one', () => {
    const t0 = performance.now();
    const { sweep, calls } = counting();
    const timer = new EarliestDeadline(sweep);
    timer.add(t0 + 300);
    timer.add(t0 + 100);
    timer.add(t0 + 200);
    expect(jest.getTimerCount()).toBe(1);
    jest.advanceTimersByTime(99);
    expect(calls).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(calls).toEqual([t0 + 100]);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('disarms on stop', () => {
    const { sweep, calls } = counting();
    const timer = new EarliestDeadline(sweep);
    timer.add(performance.now() + 100);
    timer.stop();
    expect(jest.getTimerCount()).toBe(0);
    jest.advanceTimersByTime(1_000);
    expect(calls).toEqual([]);
  });

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

describe('EarliestDeadline with real timers', () => {
  const timeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

  it('never keeps the process alive on its own (its timer is unref’d)', () => {
    const before = timeouts();
    const timer = new EarliestDeadline(counting().sweep);
    timer.add(performance.now() + 60_000);
    expect(timeouts()).toBe(before);
    timer.stop();
  });

  it('waits for a deadline past setTimeout’s range instead of firing every millisecond', async () => {
    // Node runs a delay over 2^31-1 ms after 1 ms; uncapped, the sweep (deadline not due)
    // would re-arm the same 1 ms timer again and again.
    const { sweep, calls } = counting();
    const far = performance.now() + 2 ** 32;
    const timer = new EarliestDeadline((now) => (sweep(now), far));
    timer.add(far);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(calls).toEqual([]);
    timer.stop();
  });
});
