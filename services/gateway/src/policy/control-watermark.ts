import { fromBinary } from '@bufbuild/protobuf';
import { AppError } from '@context-gateway/errors';
import { StreamFollower } from '@context-gateway/messaging';
import { events, streams } from '@context-gateway/proto';
import { DeliverPolicy, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

import type { ControlHead } from './control-head.js';

/** What one CONTROL message requires of an org's cached rules before the gateway may decide for it again. */
export type Requirement = { orgId: string; revision?: bigint; controlSeq?: number };

/**
 * The gateway's view of the CONTROL stream, the one ordered log of every policy-relevant
 * fact (PolicyChanged, ApplicationChanged, GrantChanged):
 *
 * - `latestSeq()` is a sequence >= every message the stream had stored when it was called
 *   (ControlHead: the pushed sequence after a PING/PONG, or the server's answer). A change
 *   whose call has returned is already in the stream (its publish was acknowledged), so a
 *   request that starts afterwards gets a number >= that change's sequence. Concurrent
 *   callers share one round trip in flight, but only one that was *sent after* they asked.
 * - `waitConsumed(seq)` resolves once this process has read the stream up to `seq` and
 *   passed every requirement to `onRequirement` (synchronously, before resolving).
 *
 * Together: a decision made after `waitConsumed(await latestSeq())` knows about every change
 * that returned before it started (docs/policy.md).
 */
export class ControlWatermark {
  private readonly follower: StreamFollower;
  /** The stream's last sequence when this process started reading: older events are assumed applied by policy. */
  startSeq = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly head: ControlHead,
    private readonly onRequirement: (requirement: Requirement) => void,
    private readonly logger: Logger,
  ) {
    this.follower = new StreamFollower(nc, {
      stream: streams.control.name,
      name: 'control stream reader',
      logger,
      onMessage: (m) => {
        const requirement = this.requirementOf(m.subject, m.data, m.seq);
        if (requirement) this.onRequirement(requirement);
      },
      lateError: () =>
        new AppError('policy_unavailable', 'The policy change stream could not be read up to date in time'),
    });
  }

  async start(): Promise<void> {
    const info = await (await jetstreamManager(this.nc)).streams.info(streams.control.name);
    this.startSeq = info.state.last_seq;
    await this.follower.start(
      { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.startSeq + 1 },
      this.startSeq,
    );
  }

  stop(): Promise<void> {
    return this.follower.stop();
  }

  /** A sequence covering the CONTROL stream as of when this call (or the current request) began. */
  latestSeq(): Promise<number> {
    return this.head.latestSeq();
  }

  /** Resolves when every message up to `seq` has been read, or rejects after `timeoutMs`. */
  waitConsumed(seq: number, timeoutMs: number): Promise<void> {
    return this.follower.waitConsumed(seq, timeoutMs);
  }

  get consumedSeq(): number {
    return this.follower.consumedSeq;
  }

  private requirementOf(subject: string, data: Uint8Array, seq: number): Requirement | undefined {
    try {
      if (subject === events.policyChanged.subject) {
        const e = fromBinary(events.policyChanged.message, data);
        return { orgId: e.orgId, revision: e.revision };
      }
      if (subject === events.grantChanged.subject)
        return { orgId: fromBinary(events.grantChanged.message, data).orgId, controlSeq: seq };
      if (subject === events.applicationChanged.subject)
        return { orgId: fromBinary(events.applicationChanged.message, data).orgId, controlSeq: seq };
    } catch (error) {
      // Undecodable: policy dead-letters it too and moves its cursor past it; nothing to require.
      this.logger.warn({ err: error, seq, subject }, 'undecodable control event ignored');
    }
    return undefined;
  }
}
