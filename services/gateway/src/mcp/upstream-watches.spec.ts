import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';

import type { UpstreamListener } from './mcp-upstream.js';
import { KeptStream, type Opening, UNSUPPORTED_RETRY_MS } from './upstream-watches.js';

// The keeper of one standing upstream stream, against a server double whose streams the test
// ends and whose opens it fails, on Jest's clock: when it asks the server again.
describe('KeptStream', () => {
  beforeEach(() => void jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] }));
  afterEach(() => void jest.useRealTimers());

  function server(opened?: () => void) {
    const streams: { end: () => void; closed: boolean }[] = [];
    let refuse = false;
    let answer: 'no-token' | 'unsupported' | undefined;
    let held: Promise<void> | undefined;
    const connect = async (): Promise<Opening> => {
      if (held) await held;
      if (refuse) throw new Error('connection refused');
      if (answer) return answer;
      let end!: () => void;
      const entry = { end: () => end(), closed: false };
      streams.push(entry);
      const listener: UpstreamListener = {
        ended: new Promise((resolve) => (end = () => resolve('ended'))),
        close: () => {
          entry.closed = true;
          return Promise.resolve();
        },
      };
      return listener;
    };
    const failures: Error[] = [];
    const kept = new KeptStream(connect, (error) => failures.push(error), opened);
    return {
      kept,
      streams,
      failures,
      refuse: (yes: boolean) => (refuse = yes),
      /** What the next opens answer instead of a stream (undefined: a stream). */
      answer: (next: typeof answer) => (answer = next),
      hold: () => {
        let release!: () => void;
        held = new Promise((resolve) => (release = resolve));
        return () => {
          held = undefined;
          release();
        };
      },
    };
  }
  const advance = (ms: number) => jest.advanceTimersByTimeAsync(ms);

  it('waits longer after each stream that ends at once, and starts over only after one stayed healthy', async () => {
    const { kept, streams } = server();
    kept.reopen();
    await advance(0);
    expect(streams).toHaveLength(1);

    streams[0]?.end();
    await advance(999);
    expect(streams).toHaveLength(1);
    await advance(1);
    expect(streams).toHaveLength(2);

    // It opened fine and ended at once again: that open did not reset the wait.
    streams[1]?.end();
    await advance(1_999);
    expect(streams).toHaveLength(2);
    await advance(1);
    expect(streams).toHaveLength(3);

    // This one lived its lifetime: reopened at once, and the wait starts over.
    await advance(30_000);
    streams[2]?.end();
    await advance(0);
    expect(streams).toHaveLength(4);
    streams[3]?.end();
    await advance(1_000);
    expect(streams).toHaveLength(5);
    await kept.stop();
  });

  it('leaves a reopen to the retry already waiting, also one queued behind a failing open', async () => {
    const { kept, streams, failures, refuse, hold } = server();
    refuse(true);
    const release = hold();
    kept.reopen();
    // Queued behind the open under way, which then fails and schedules its retry.
    kept.reopen();
    release();
    await advance(0);
    expect(failures).toHaveLength(1);
    kept.reopen();
    await advance(999);
    expect(failures).toHaveLength(1);

    refuse(false);
    await advance(1);
    expect(streams).toHaveLength(1);
    await kept.stop();
  });

  it('opens the replacement before closing the stream it replaces, and nothing after stop', async () => {
    const { kept, streams, hold } = server();
    kept.reopen();
    await advance(0);
    const release = hold();
    kept.reopen();
    await advance(0);
    // The replacement is still opening: the old stream serves meanwhile.
    expect(streams.map((s) => s.closed)).toEqual([false]);
    release();
    await advance(0);
    expect(streams.map((s) => s.closed)).toEqual([true, false]);
    await kept.stop();
    expect(streams.map((s) => s.closed)).toEqual([true, true]);
    kept.reopen();
    streams[1]?.end();
    await advance(120_000);
    expect(streams).toHaveLength(2);
  });

  it('opens at once on a reopen while it waits for the person to connect', async () => {
    const { kept, streams, answer } = server();
    answer('no-token');
    kept.reopen();
    await advance(0);
    expect(streams).toHaveLength(0);
    // They connected (or subscribed, or changed what they follow): no wait for the retry.
    answer(undefined);
    kept.reopen();
    await advance(0);
    expect(streams).toHaveLength(1);
    // The wait was cleared, not left to open a second stream later.
    await advance(120_000);
    expect(streams).toHaveLength(1);
    await kept.stop();
  });

  it('leaves a reopen to the retry while a server that offers no stream waits to be asked again', async () => {
    const { kept, streams, answer } = server();
    answer('unsupported');
    kept.reopen();
    await advance(0);
    answer(undefined);
    kept.reopen();
    await advance(UNSUPPORTED_RETRY_MS - 1);
    expect(streams).toHaveLength(0);
    await advance(1);
    expect(streams).toHaveLength(1);
    await kept.stop();
  });

  it('reopens a stream that ended even when hearing of it opened threw', async () => {
    const { kept, streams, failures } = server(() => {
      throw new Error('opened failed');
    });
    kept.reopen();
    await advance(0);
    expect(failures.map((f) => f.message)).toEqual(['opened failed']);
    streams[0]?.end();
    await advance(1_000);
    expect(streams).toHaveLength(2);
    await kept.stop();
  });
});
