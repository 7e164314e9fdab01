import {
  createInbox,
  errors,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from '@nats-io/transport-node';

import { EarliestDeadline } from './earliest-deadline.js';

/**
 * Why a request failed in the mux; RpcClient maps each to its stable error code. `refused`:
 * the server refused to take the request's publish (a permissions violation on its subject).
 */
export type RequestFailure = 'timeout' | 'no_responders' | 'closed' | 'refused';

/** A request's failure; `reason` says which of the transport's outcomes it was. */
export class MuxRequestError extends Error {
  constructor(
    readonly reason: RequestFailure,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'MuxRequestError';
  }
}

interface Pending {
  resolve(msg: Msg): void;
  reject(error: Error): void;
  /** performance.now() after which the request has timed out. */
  deadline: number;
  /** Where the request went: a refused publish names it (see watchRefusals). */
  subject: string;
}

/**
 * Request/reply over one inbox subscription of its own (`<inboxPrefix>.<nuid>.*`), as nats.js's
 * `request()` does, without its per-request machinery: nats.js makes a timer, a timeout
 * promise, a deferred, a `Promise.race` of the two and a `catch` on it for every request;
 * here a request is one promise and a map entry, and one timer, armed for the earliest
 * deadline, sweeps out the requests whose time is up. What a caller sees is the same: the
 * reply, or a failure that says timeout, no responders (the server's 503 status on the
 * reply subject), the server refused the publish or the inbox subscription, or the
 * connection closed under it.
 *
 * The inbox sits under the connection's `inboxPrefix`, so a service whose NATS rights allow
 * replies only under its own prefix (nats-permissions.ts) receives them here too.
 *
 * A mux whose subscription ends while the connection stays open (the server refused it, or
 * it was drained) leaves requestMuxOf, so the next request subscribes again, as nats.js
 * resets its own mux.
 */
export class RequestMux {
  private readonly pending = new Map<string, Pending>();
  private readonly base: string;
  private readonly sub: Subscription;
  private next = 0;
  /** Fails the requests whose time is up (sweep); a request waiting for its reply keeps the process alive, it does not. */
  private readonly deadlines = new EarliestDeadline((now) => this.sweep(now));
  private closedError: MuxRequestError | undefined;

  constructor(
    private readonly nc: NatsConnection,
    inboxPrefix: string | undefined,
  ) {
    this.base = `${createInbox(inboxPrefix)}.`;
    // nats.js reports a refused subscription as callback(error, {}) (then closes it): the
    // message is empty then, and nothing more arrives on it.
    this.sub = nc.subscribe(`${this.base}*`, {
      callback: (error, msg) => (error ? this.fail(error) : this.dispatch(msg)),
    });
    // The subscription ends with the connection (close, drain) or a refusal: nothing more can
    // arrive, so every request still waiting fails now rather than at its deadline.
    const ended = () => this.fail(new Error('the inbox subscription ended'));
    void this.sub.closed.then(ended, ended);
    void this.watchRefusals();
  }

  /** Requests waiting for their reply (each holds a map entry until it settles). */
  get size(): number {
    return this.pending.size;
  }

  /**
   * Sends `payload` to `subject` and waits up to `timeoutMs` for the reply. As nats.js's
   * request(): no timeout (0) means one second, one under a millisecond is refused, and so is
   * a request on a draining connection (its replies could no longer arrive).
   */
  request(subject: string, payload: Uint8Array, headers: MsgHdrs, timeoutMs: number): Promise<Msg> {
    if (this.closedError) return Promise.reject(this.closedError);
    const ms = timeoutMs || 1_000;
    if (!(ms >= 1)) return Promise.reject(new RangeError(`A request's timeout must be at least 1 ms, not ${ms}`));
    if (this.nc.isDraining()) return Promise.reject(new Error('The connection is draining'));
    const token = (this.next++).toString(36);
    return new Promise<Msg>((resolve, reject) => {
      const deadline = performance.now() + ms;
      // Published first: a subject nats.js refuses (or a closed connection) throws here, and
      // the request is then never entered.
      this.nc.publish(subject, payload, { reply: this.base + token, headers });
      this.pending.set(token, { resolve, reject, deadline, subject });
      this.deadlines.add(deadline);
    });
  }

  private dispatch(msg: Msg): void {
    const token = msg.subject.slice(this.base.length);
    const entry = this.pending.get(token);
    if (!entry) return; // a late reply to a request that already timed out
    this.pending.delete(token);
    // The server answers a request nobody subscribes to with an empty 503 status message.
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      entry.reject(new MuxRequestError('no_responders', 'no responders'));
    } else {
      entry.resolve(msg);
    }
  }

  /**
   * The server refuses a publish with `-ERR 'Permissions Violation for Publish to "<subject>"'`,
   * which nats.js reports only on the connection's status (the public `nc.status()`): the
   * oldest request waiting on that subject is the one refused, as nats.js matches it.
   */
  private async watchRefusals(): Promise<void> {
    try {
      for await (const status of this.nc.status()) {
        if (this.closedError) break; // this mux is done; a new one watches for itself
        if (
          status.type === 'error' &&
          status.error instanceof errors.PermissionViolationError &&
          status.error.operation === 'publish'
        ) {
          this.refuse(status.error);
        }
      }
    } catch {
      // The status stream ends with the connection; nothing waits on it then.
    }
  }

  private refuse(error: InstanceType<typeof errors.PermissionViolationError>): void {
    for (const [token, entry] of this.pending) {
      if (entry.subject === error.subject) {
        this.pending.delete(token);
        entry.reject(new MuxRequestError('refused', error.message, { cause: error }));
        return;
      }
    }
  }

  /** Fails the requests due by `now`; the earliest deadline left (Infinity: none). */
  private sweep(now: number): number {
    let earliest = Number.POSITIVE_INFINITY;
    for (const [token, entry] of this.pending) {
      if (entry.deadline <= now) {
        this.pending.delete(token);
        entry.reject(new MuxRequestError('timeout', 'timeout'));
      } else if (entry.deadline < earliest) {
        earliest = entry.deadline;
      }
    }
    return earliest;
  }

  /**
   * The inbox can take no more replies (refused, drained, the connection closed): every request
   * still waiting fails now, later ones on this mux fail at once, and the connection's next
   * request gets a new mux (while the connection is open).
   */
  private fail(cause: Error): void {
    if (muxes.get(this.nc) === this) muxes.delete(this.nc);
    this.closedError ??= new MuxRequestError('closed', `the inbox for replies is gone: ${cause.message}`, { cause });
    this.deadlines.stop();
    for (const entry of this.pending.values()) entry.reject(this.closedError);
    this.pending.clear();
  }
}

// One mux per connection, made by its first request: every RpcClient on a connection shares its
// one inbox subscription, as every nc.request() shared nats.js's.
const muxes = new WeakMap<NatsConnection, RequestMux>();

/** The connection's mux, made (subscribing its inbox) if it has none or its last one ended. */
export function requestMuxOf(nc: NatsConnection, inboxPrefix: string | undefined): RequestMux {
  let mux = muxes.get(nc);
  if (!mux) {
    mux = new RequestMux(nc, inboxPrefix);
    muxes.set(nc, mux);
  }
  return mux;
}
