import { describe, expect, it } from '@jest/globals';

import { atTurnEnd, runStages } from './turn-end.js';

/**
 * After the next turn's end: a setImmediate queued behind whatever the current one queued. (A
 * 0 ms timer is not: once a millisecond has passed it fires in the timers phase, before it.)
 */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('atTurnEnd', () => {
  it('runs every publish callback before every ping callback, whatever order they came in', async () => {
    const ran: string[] = [];
    atTurnEnd('ping', () => ran.push('ping 1'));
    atTurnEnd('publish', () => ran.push('publish 1'));
    atTurnEnd('ping', () => ran.push('ping 2'));
    atTurnEnd('publish', () => ran.push('publish 2'));
    expect(ran).toEqual([]);
    await nextTurn();
    expect(ran).toEqual(['publish 1', 'publish 2', 'ping 1', 'ping 2']);
  });

  it('runs in the same turn as a setImmediate scheduled with it, after the microtasks of the turn', async () => {
    const ran: string[] = [];
    setImmediate(() => ran.push('immediate'));
    atTurnEnd('ping', () => ran.push('ping'));
    void Promise.resolve().then(() => ran.push('microtask'));
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(ran).toEqual(['microtask', 'immediate', 'ping']);
  });

  it.each([
    ['ping', 'publish'],
    ['publish', 'ping'],
  ] as const)('leaves what a %s callback schedules (%s) to the next turn, and runs it there', async (first, then) => {
    const ran: string[] = [];
    atTurnEnd(first, () => {
      ran.push(first);
      atTurnEnd(then, () => ran.push(`${then}, next turn`));
    });
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(ran).toEqual([first]);
    await nextTurn();
    expect(ran).toEqual([first, `${then}, next turn`]);
  });

  it('runs every callback when some throw, and returns each error', () => {
    const ran: string[] = [];
    const first = new Error('publish 1');
    const second = new Error('ping 1');
    const errors = runStages([
      [
        () => {
          throw first;
        },
        () => ran.push('publish 2'),
      ],
      [
        () => {
          throw second;
        },
        () => ran.push('ping 2'),
      ],
    ]);
    expect(ran).toEqual(['publish 2', 'ping 2']);
    expect(errors).toEqual([first, second]);
  });
});
