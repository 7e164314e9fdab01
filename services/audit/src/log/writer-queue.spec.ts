import { describe, expect, it } from '@jest/globals';

import { WriterQueue } from './writer-queue.js';

interface Message {
  id: number;
  data: Uint8Array;
}
const message = (bytes: number, id = 0): Message => ({ id, data: new Uint8Array(bytes) });

describe('WriterQueue', () => {
  it('has a whole batch waiting at batchSize plain events', () => {
    const queue = new WriterQueue<Message>(100);
    for (let i = 0; i < 99; i += 1) queue.push(message(400, i));
    expect(queue.full).toBe(false);
    queue.push(message(400, 99));
    expect(queue.full).toBe(true);
    expect(queue.take().map((m) => m.id)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(queue.length).toBe(0);
    expect(queue.full).toBe(false);
  });

  it('has a whole batch waiting once group-commit messages hold batchSize events, however few the messages', () => {
    // 100 events' budget; each message carries 40 events of 400 bytes.
    const queue = new WriterQueue<Message>(100);
    for (let i = 0; i < 8; i += 1) queue.push(message(40 * 400, i));
    expect(queue.length).toBe(8);
    expect(queue.full).toBe(true);
    // One batch is about batchSize events: the messages up to the budget, the rest stays.
    const batch = queue.take();
    // 7 messages (112,000 bytes) reach the 102,400-byte budget.
    expect(batch.map((m) => m.id)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(queue.length).toBe(1);
    expect(queue.full).toBe(false);
  });

  it('takes one message at least, even one bigger than the budget, and gives back what waits', () => {
    const queue = new WriterQueue<Message>(2);
    queue.push(message(1_000_000, 1));
    queue.push(message(10, 2));
    expect(queue.take().map((m) => m.id)).toEqual([1]);
    expect(queue.full).toBe(false);
    queue.push(message(10, 3));
    expect(queue.full).toBe(true);
    expect(queue.drain().map((m) => m.id)).toEqual([2, 3]);
    expect(queue.length).toBe(0);
    expect(queue.take()).toEqual([]);
  });

  it('wakes the writer waiting for a batch as soon as the byte budget fills, long before its wait runs out', async () => {
    // A budget of 100 events is 102,400 bytes; group-commit messages of 40 events, 16,000 bytes each.
    const queue = new WriterQueue<Message>(100);
    queue.push(message(16_000, 0));
    let woke = false;
    const waiting = queue.waitForBatch(60_000).then(() => (woke = true));
    for (let i = 1; i < 6; i += 1) queue.push(message(16_000, i)); // 96,000 bytes: not yet
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(woke).toBe(false);
    queue.push(message(16_000, 6)); // 112,000 bytes in 7 messages
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(woke).toBe(true);
    await waiting;
    // A whole batch waiting: the next wait does not wait at all.
    await queue.waitForBatch(60_000);
    expect(queue.take()).toHaveLength(7);
  });

  it('wakes the waiting writer at batchSize plain events, and on wake() or close() with less', async () => {
    const queue = new WriterQueue<Message>(10);
    const woken = () => {
      let done = false;
      const promise = queue.waitForBatch(60_000).then(() => (done = true));
      return async () => {
        await new Promise<void>((resolve) => setImmediate(resolve));
        return { done, promise };
      };
    };
    const byCount = woken();
    for (let i = 0; i < 9; i += 1) queue.push(message(400, i));
    expect((await byCount()).done).toBe(false);
    queue.push(message(400, 9));
    expect((await byCount()).done).toBe(true);
    queue.take();

    const byWake = woken();
    queue.push(message(400, 10));
    expect((await byWake()).done).toBe(false);
    queue.wake();
    expect((await byWake()).done).toBe(true);

    const byClose = woken();
    expect((await byClose()).done).toBe(false);
    queue.close();
    expect((await byClose()).done).toBe(true);
  });

  it('holds the pump back from two batches of payload on until a batch is taken, or the queue closes', async () => {
    // A budget of 100 events is 102,400 bytes; two budgets are 204,800.
    const queue = new WriterQueue<Message>(100);
    const settled = (promise: Promise<void>) => {
      let done = false;
      void promise.then(() => (done = true));
      return async () => {
        await new Promise<void>((resolve) => setImmediate(resolve));
        return done;
      };
    };
    for (let i = 0; i < 12; i += 1) queue.push(message(16_000, i));
    const open = settled(queue.room());
    expect(await open()).toBe(true);
    queue.push(message(16_000, 12)); // 208,000 bytes
    const held = settled(queue.room());
    expect(await held()).toBe(false);
    queue.take(); // 7 messages: 96,000 bytes remain
    expect(await held()).toBe(true);

    for (let i = 0; i < 8; i += 1) queue.push(message(16_000, 13 + i));
    const closing = settled(queue.room());
    expect(await closing()).toBe(false);
    queue.close();
    expect(await closing()).toBe(true);
    expect(await settled(queue.room())()).toBe(true);
  });
});
