import { create } from '@bufbuild/protobuf';
import type { RpcClient } from '@context-gateway/messaging';
import { orgIntegrationRules } from '@context-gateway/policy-engine';
import { PolicyLayer, rpc } from '@context-gateway/proto';
import { beforeEach, describe, expect, it, jest } from '@jest/globals';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import type { ControlHead } from './control-head.js';
import { PolicyDecider } from './policy-decider.js';

const ORG = 'org-1';
const request = { orgId: ORG, applicationId: 'app-1', userId: 'user-1' };

/** What policy answers for the org: an allow of github for app-1, at `revision` and CONTROL cursor `controlSeq`. */
function rulesAt(revision: bigint, controlSeq: number) {
  return create(rpc.policy.getCompiledRules.response, {
    revision,
    controlSeq: BigInt(controlSeq),
    applicationIds: ['app-1'],
    knownCapabilities: ['github:read:repos'],
    rules: [
      ...orgIntegrationRules(ORG, ['github']).map((r) => ({
        id: r.id,
        layer: PolicyLayer.ORG,
        subject: r.subject,
        integration: 'github',
      })),
      { id: 'app', layer: PolicyLayer.APPLICATION, subject: 'app-1', integration: 'github' },
      { id: 'user', layer: PolicyLayer.USER, subject: 'user-1', integration: 'github', applicationId: 'app-1' },
    ],
  });
}

/** The watermark as the decider sees it: what the head answers and how far CONTROL is read. */
class FakeWatermark {
  latest = 10;
  consumedSeq = 10;
  startSeq = 0;
  readonly waitConsumed = jest.fn((_seq: number, _timeoutMs: number) => Promise.resolve());
  latestSeq(): Promise<number> {
    return Promise.resolve(this.latest);
  }
}

describe('PolicyDecider freshness', () => {
  let watermark: FakeWatermark;
  let fills: jest.Mock<() => Promise<ReturnType<typeof rulesAt>>>;
  let decider: PolicyDecider;
  /** What a CONTROL event about the org tells the decider (the watermark's callback). */
  let require: (r: { orgId: string; revision?: bigint; controlSeq?: number }) => void;

  beforeEach(async () => {
    fills = jest.fn(() => Promise.resolve(rulesAt(1n, 10)));
    const rpcClient = { request: fills } as unknown as RpcClient;
    const nc = {} as NatsConnection;
    const env = { POLICY_FRESHNESS_TIMEOUT_MS: 1000 } as Env;
    const logger = { error: jest.fn() } as unknown as Logger;
    decider = new PolicyDecider(rpcClient, nc, env, logger, {} as ControlHead);
    watermark = new FakeWatermark();
    const internals = decider as unknown as {
      watermark: FakeWatermark;
      require(r: { orgId: string; revision?: bigint; controlSeq?: number }): void;
    };
    internals.watermark = watermark;
    require = (r) => internals.require(r);
    // The first decision for the org fills its rules (slow path); the tests start from there.
    await expect(decider.evaluateEach(request, ['github:read:repos'])).resolves.toMatchObject([{ allowed: true }]);
    expect(fills).toHaveBeenCalledTimes(1);
    watermark.waitConsumed.mockClear();
  });

  it('answers a plain hit without waiting or refilling (the fast path)', async () => {
    await expect(decider.evaluateEach(request, ['github:read:repos'])).resolves.toMatchObject([{ allowed: true }]);
    expect(watermark.waitConsumed).not.toHaveBeenCalled();
    expect(fills).toHaveBeenCalledTimes(1);
  });

  it('waits and refills when a change since concerns the org (a stale entry)', async () => {
    require({ orgId: ORG, revision: 2n });
    fills.mockImplementation(() => Promise.resolve(rulesAt(2n, 10)));
    await expect(decider.evaluateEach(request, ['github:read:repos'])).resolves.toMatchObject([{ allowed: true }]);
    expect(watermark.waitConsumed).toHaveBeenCalledTimes(1);
    expect(watermark.waitConsumed.mock.calls[0]?.[0]).toBe(10);
    expect(fills).toHaveBeenCalledTimes(2);
  });

  it('waits until CONTROL is read up to the latest sequence when it is behind, even for a current entry', async () => {
    watermark.latest = 12;
    watermark.consumedSeq = 11;
    await expect(decider.evaluateEach(request, ['github:read:repos'])).resolves.toMatchObject([{ allowed: true }]);
    expect(watermark.waitConsumed).toHaveBeenCalledTimes(1);
    expect(watermark.waitConsumed.mock.calls[0]?.[0]).toBe(12);
    // Nothing read meanwhile concerned the org: its rules stay, no refill.
    expect(fills).toHaveBeenCalledTimes(1);
  });

  it('rejects (never throws) when the request is not one', async () => {
    let decided: Promise<unknown> | undefined;
    expect(() => {
      decided = decider.evaluateEach(undefined as unknown as typeof request, ['github:read:repos']);
    }).not.toThrow();
    await expect(decided).rejects.toBeInstanceOf(TypeError);
  });
});
