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
    expect(batch.map((m) => m.id)).toEqual([0, 1, 2, 3, 4, 5, 6, 7].slice(0, batch.length));
    expect(batch.length).toBeLessThan(8);
    expect(queue.length).toBe(8 - batch.length);
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
});
