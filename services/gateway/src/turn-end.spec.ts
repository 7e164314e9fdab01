import { describe, expect, it } from '@jest/globals';

import { atTurnEnd } from './turn-end.js';

const nextTurn = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

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

  it('leaves what a ping callback schedules to the next turn, and runs it there', async () => {
    const ran: string[] = [];
    atTurnEnd('ping', () => {
      ran.push('ping');
      atTurnEnd('publish', () => ran.push('publish, next turn'));
    });
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(ran).toEqual(['ping']);
    await nextTurn();
    expect(ran).toEqual(['ping', 'publish, next turn']);
  });
});
