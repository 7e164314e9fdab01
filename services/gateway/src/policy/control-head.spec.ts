import { AppError } from '@context-gateway/errors';
import { runWithRequestContext } from '@context-gateway/observability';
import { describe, expect, it, jest } from '@jest/globals';
import type { NatsConnection } from '@nats-io/transport-node';

import { atTurnEnd } from '../turn-end.js';
import { ControlHead } from './control-head.js';

/**
 * A head on a connection that has no server info yet: nothing is proven, so every round trip
 * asks the server (fromServer, replaced here by `answers`, one per round trip).
 */
function headAnswering(...answers: (number | Error)[]) {
  const nc = { subscribe: () => ({ isClosed: () => false }), info: undefined, isClosed: () => false };
  const head = new ControlHead(nc as unknown as NatsConnection);
  const fromServer = jest
    .spyOn(head as unknown as { fromServer(): Promise<number> }, 'fromServer')
    .mockImplementation(() => {
      const answer = answers.shift();
      if (answer === undefined) throw new Error('asked more often than the test expects');
      return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
    });
  return { head, fromServer };
}

describe('ControlHead round trips', () => {
  it("asks the server after the turn end's publish callbacks, whichever was scheduled first", async () => {
    const { head, fromServer } = headAnswering(7);
    const order: string[] = [];
    fromServer.mockImplementation(() => {
      order.push('ask');
      return Promise.resolve(7);
    });
    const asked = head.latestSeq();
    atTurnEnd('publish', () => order.push('publish'));
    await expect(asked).resolves.toBe(7);
    // The turn's audit batch is queued before the PING: it leaves in the PING's write.
    expect(order).toEqual(['publish', 'ask']);
  });
});

describe('ControlHead within one request', () => {
  it('does not remember a failed question: a retry in the same request asks again, and that answer is kept', async () => {
    const { head, fromServer } = headAnswering(new Error('stream down'), 7);
    await runWithRequestContext({ requestId: 'r-1' }, async () => {
      const failed = head.latestSeq().catch((e: unknown) => e);
      expect(await failed).toBeInstanceOf(AppError);
      expect(await failed).toMatchObject({ code: 'policy_unavailable' });
      await expect(head.latestSeq()).resolves.toBe(7);
      // The success is remembered: the request's later checks share it, no third round trip.
      await expect(head.latestSeq()).resolves.toBe(7);
    });
    expect(fromServer).toHaveBeenCalledTimes(2);
  });

  it('rejects (never throws) in a request context that cannot remember, and asks nothing', async () => {
    const { head, fromServer } = headAnswering(7);
    let asked: Promise<number> | undefined;
    runWithRequestContext(Object.freeze({ requestId: 'r-frozen' }), () => {
      expect(() => (asked = head.latestSeq())).not.toThrow();
    });
    await expect(asked).rejects.toBeInstanceOf(TypeError);
    await new Promise((resolve) => setImmediate(resolve));
    expect(fromServer).not.toHaveBeenCalled();
  });
});
