import { type Clock, systemClock } from '@context-gateway/clock';
import type { MsgHdrs } from '@nats-io/transport-node';

/** What a handler may know about the message besides its body. */
export class RpcContext {
  constructor(
    readonly subject: string,
    readonly headers: MsgHdrs | undefined,
    readonly requestId: string,
    /** Epoch ms after which the caller has given up; Infinity when none was sent. */
    readonly deadline: number,
    private readonly clock: Clock = systemClock,
  ) {}

  get remainingMs(): number {
    return this.deadline - this.clock.now();
  }
}
