import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';

import { Deadlines } from './deadlines.js';

// The credential check's fail-closed deadline, bounded by one timer for every request's wait.
// Fake timers fake performance.now too: deadlines move only when the test says so.
const late = () => new Error('late');
const failed = (error: unknown) => new Error(`failed: ${String(error)}`);
const never = () => new Promise<number>(() => undefined);

/** How a wait ended so far, without awaiting it. */
function watch<T>(wait: Promise<T>): { state: string; value?: T; error?: Error } {
  const seen: { state: string; value?: T; error?: Error } = { state: 'pending' };
  wait.then(
    (value) => Object.assign(seen, { state: 'resolved', value }),
    (error: Error) => Object.assign(seen, { state: 'rejected', error }),
  );
  return seen;
}
const settle = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

describe('Deadlines', () => {
  beforeEach(() => void jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] }));
  afterEach(() => void jest.useRealTimers());

  it("answers with the work's value, or its rejection mapped, when it settles in time", async () => {
    const deadlines = new Deadlines();
    await expect(deadlines.within(Promise.resolve(7), 1_000, late, failed)).resolves.toBe(7);
    await expect(deadlines.within(Promise.reject(new Error('no')), 1_000, late, failed)).rejects.toThrow(
      'failed: Error: no',
    );
  });

  it('fails a wait at its own deadline, not before, with the late error', async () => {
    const deadlines = new Deadlines();
    const wait = watch(deadlines.within(never(), 500, late, failed));
    jest.advanceTimersByTime(499);
    await settle();
    expect(wait.state).toBe('pending');
    jest.advanceTimersByTime(1);
    await settle();
    expect(wait).toMatchObject({ state: 'rejected', error: { message: 'late' } });
  });

  it('with one timeout for all (deadline order), fails each wait at its own time and stops at the first not due', async () => {
    const deadlines = new Deadlines();
    const first = watch(deadlines.within(never(), 500, late, failed));
    jest.advanceTimersByTime(100);
    let answer!: (value: number) => void;
    const answered = watch(deadlines.within(new Promise<number>((r) => (answer = r)), 500, late, failed));
    jest.advanceTimersByTime(100);
    const third = watch(deadlines.within(never(), 500, late, failed));
    answer(1);
    await settle();

    jest.advanceTimersByTime(300);
    await settle();
    expect(first.state).toBe('rejected');
    expect(answered).toMatchObject({ state: 'resolved', value: 1 });
    expect(third.state).toBe('pending');
    // Re-armed for the first wait not yet due, where that sweep stopped.
    expect(jest.getTimerCount()).toBe(1);
    jest.advanceTimersByTime(199);
    await settle();
    expect(third.state).toBe('pending');
    jest.advanceTimersByTime(1);
    await settle();
    expect(third.state).toBe('rejected');
    expect(jest.getTimerCount()).toBe(0);
  });

  it('bounds every wait with one timer, re-armed for an earlier deadline and for the next one', async () => {
    const deadlines = new Deadlines();
    let answer!: (value: number) => void;
    const answered = watch(deadlines.within(new Promise<number>((r) => (answer = r)), 300, late, failed));
    const long = watch(deadlines.within(never(), 1_000, late, failed));
    const waits = Array.from({ length: 50 }, () => watch(deadlines.within(never(), 600, late, failed)));
    // Asked after the others, due before them: the one timer is moved earlier, not added to.
    const short = watch(deadlines.within(never(), 100, late, failed));
    expect(jest.getTimerCount()).toBe(1);

    jest.advanceTimersByTime(100);
    await settle();
    expect(short.state).toBe('rejected');
    expect([long.state, answered.state, ...waits.map((w) => w.state)].every((s) => s === 'pending')).toBe(true);

    // Settled in time: its deadline passing later fails nothing.
    answer(3);
    await settle();
    jest.advanceTimersByTime(300);
    await settle();
    expect(answered).toMatchObject({ state: 'resolved', value: 3 });
    expect(waits.every((w) => w.state === 'pending')).toBe(true);

    jest.advanceTimersByTime(200);
    await settle();
    expect(waits.every((w) => w.state === 'rejected')).toBe(true);
    expect(long.state).toBe('pending');
    expect(jest.getTimerCount()).toBe(1);

    jest.advanceTimersByTime(400);
    await settle();
    expect(long.state).toBe('rejected');
    // Nothing left to bound: no timer left either.
    expect(jest.getTimerCount()).toBe(0);
  });
});
