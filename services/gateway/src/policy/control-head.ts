import { AppError } from '@context-gateway/errors';
import { currentRequestContext, type RequestContext } from '@context-gateway/observability';
import { streams } from '@context-gateway/proto';
import { type JetStreamManager, jetstreamManager, type StreamInfo } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';

import { atTurnEnd } from '../turn-end.js';

/** One answer to "what is the stream's last sequence": the number, or why there is none. */
type StreamAnswer = { ok: true; seq: number } | { ok: false; error: AppError };

/** How the head was last found: what the benchmarks and tests count. */
export interface ControlHeadStats {
  /** Round trips that asked JetStream for the stream's last sequence (STREAM.INFO). */
  asked: number;
  /** Round trips that were a plain NATS PING/PONG, answered from the pushed sequences. */
  flushed: number;
}

const control = streams.control;

/**
 * A request context with the answers heads gave it, each under its head's own symbol (so a
 * request context must stay extensible: RequestContext says so).
 */
type Remembering = RequestContext & Record<symbol, Promise<number> | undefined>;

/**
 * "What is the CONTROL stream's last sequence now?" for everything a request must see
 * (policy changes, grant and application changes, token and API key revocations), so a
 * change whose call returned before the request began is known to it (docs/policy.md,
 * "Freshness").
 *
 * Pushed, with one cheap round trip per batch. The stream republishes the headers of every
 * message it stores to `control.seq.v1.>` (RePublish), and this process keeps the highest
 * `Nats-Sequence` seen. nats-server queues that copy and the publisher's ack on one FIFO, in
 * that order, from the goroutine that stored the message; so once a publisher holds its ack,
 * the copy is already in the outbound buffer of every subscriber on that server. A PING sent
 * after a request began is answered after everything queued to this connection before it:
 * when the PONG arrives, the pushed sequence covers every change that returned before the
 * request began. That round trip is a core NATS flush (no JetStream API call, about a fifth
 * of the CPU of a STREAM.INFO on both ends, measured), shared by every check waiting for it.
 *
 * The push alone could be behind, so it is trusted only on one connection it has been
 * proven complete on: STREAM.INFO is asked instead (and its answer proves the push complete
 * from then on) when
 * - nothing has been proven on this connection yet: at start, and after any reconnect (the
 *   server id and client id change; copies sent while disconnected are lost);
 * - the subscription was refused (no subscribe right) or closed;
 * - the stream has no RePublish (created by a nats-server before 2.10 could add it);
 * - the server is part of a cluster, or the stream lives on another server: a copy then
 *   reaches this server over a route, with no order against the ack sent elsewhere.
 *   (deploy/ runs a 3-node cluster: there every batch asks, as before.)
 *
 * Shared, never guessed: concurrent callers share one round trip in flight, but only one
 * *sent after* they asked; within one request (the HTTP edge's request context) the first
 * answer serves every later check of that request.
 */
export class ControlHead {
  private pending: ((answer: StreamAnswer) => void)[] = [];
  /**
   * Where this head keeps a request's answer on its request context, rather than in a WeakMap
   * beside it: a property read and write instead of an ephemeron table's lookup and insertion
   * per request (the auth check asks first, the policy check finds it there). One symbol per
   * head: another head (another connection) never answers from this one's.
   */
  private readonly answered = Symbol('cg:control-latest-seq');
  private asking = false;
  private jsm: JetStreamManager | undefined;
  private readonly pushedSub: Subscription;
  /** Highest sequence known stored: from the pushed copies, or from STREAM.INFO. */
  private pushed = 0;
  /** The connection (server id/client id) on which every stored sequence is pushed to us, if proven. */
  private trustedOn: string | undefined;
  private subscriptionLost = false;
  readonly stats: ControlHeadStats = { asked: 0, flushed: 0 };

  constructor(
    private readonly nc: NatsConnection,
    private readonly unavailable: () => AppError = () =>
      new AppError('policy_unavailable', 'The policy change stream is unreachable'),
  ) {
    // Subscribed before any STREAM.INFO is sent on this connection: the server registers the
    // SUB before it reads that request, so what the answer does not cover is pushed to us.
    this.pushedSub = nc.subscribe(control.republish.destination, {
      callback: (error, m) => {
        if (error) {
          this.subscriptionLost = true;
          this.trustedOn = undefined;
          return;
        }
        const seq = Number(m.headers?.get('Nats-Sequence'));
        if (Number.isSafeInteger(seq) && seq > this.pushed) this.pushed = seq;
      },
    });
  }

  /** The stream's last sequence, asked after this call began (or after the current request began). */
  latestSeq(): Promise<number> {
    // Not async (a promise fewer per check), but a throw is still a rejection, as it was.
    try {
      const context = currentRequestContext() as Remembering | undefined;
      return context?.[this.answered] ?? this.ask(context);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private ask(context: Remembering | undefined): Promise<number> {
    let answered!: (answer: StreamAnswer) => void;
    const asked = new Promise<number>((resolve, reject) => {
      answered = (answer) => {
        if (answer.ok) return resolve(answer.seq);
        // A failed question is not remembered: a retry in the same request asks again.
        if (context?.[this.answered] === asked) context[this.answered] = undefined;
        reject(answer.error);
      };
    });
    // Remembered before it is queued: if the context refuses the property (not extensible),
    // nothing was asked and this unsettled promise is dropped, never an unhandled rejection.
    if (context) context[this.answered] = asked;
    this.pending.push(answered);
    if (!this.asking) {
      this.asking = true;
      void this.askLoop();
    }
    return asked;
  }

  private async askLoop(): Promise<void> {
    while (this.pending.length > 0) {
      // Each round trip waits for the end of this turn of the event loop (atTurnEnd: after the
      // poll phase's I/O callbacks), so every request that arrived in the same turn shares it —
      // and its PING leaves in the same socket write as the turn's other commands, the audit
      // batch of the turn included (queued first, src/turn-end.ts).
      // Waiting never weakens the answer: the PING is still sent after each of them asked.
      await new Promise<void>((resolve) => atTurnEnd('ping', resolve));
      // Everyone waiting now asked before this round trip is sent: it answers all of them.
      const batch = this.pending;
      this.pending = [];
      try {
        const seq = (await this.fromPush()) ?? (await this.fromServer());
        for (const done of batch) done({ ok: true, seq });
      } catch (error) {
        const failure = this.unavailable();
        failure.cause = error;
        for (const done of batch) done({ ok: false, error: failure });
      }
    }
    this.asking = false;
  }

  /** The pushed sequence after a PING/PONG, when this connection is proven to get every copy; else undefined. */
  private async fromPush(): Promise<number | undefined> {
    const on = this.connectionId();
    if (on === undefined || on !== this.trustedOn || this.pushedSub.isClosed()) return undefined;
    try {
      await this.nc.flush();
    } catch {
      // Disconnected meanwhile (nats.js rejects the PING): STREAM.INFO waits for the next connection.
      return undefined;
    }
    // A reconnect while flushing: copies may have been lost in between.
    if (this.connectionId() !== on || this.trustedOn !== on) return undefined;
    this.stats.flushed += 1;
    return this.pushed;
  }

  private async fromServer(): Promise<number> {
    const before = this.connectionId();
    this.jsm ??= await jetstreamManager(this.nc);
    const info = await this.jsm.streams.info(control.name);
    this.stats.asked += 1;
    const seq = info.state.last_seq;
    if (seq > this.pushed) this.pushed = seq;
    // Everything stored up to the answer is <= seq; everything stored after it is pushed to
    // this connection (subscribed before the question, on the same connection throughout).
    if (before !== undefined && this.connectionId() === before && this.pushable(info)) this.trustedOn = before;
    return seq;
  }

  /** The push can prove freshness: one server, the stream on it, republishing where we listen. */
  private pushable(info: StreamInfo): boolean {
    const server = this.nc.info;
    return (
      !this.subscriptionLost &&
      !this.pushedSub.isClosed() &&
      server !== undefined &&
      server.jetstream === true &&
      server.cluster === undefined &&
      (info.cluster?.leader === undefined || info.cluster.leader === server.server_name) &&
      info.config.republish?.dest === control.republish.destination
    );
  }

  /** This connection's identity: a reconnect gets a new client id (and a restarted server a new server id). */
  private connectionId(): string | undefined {
    const server = this.nc.info;
    return server === undefined || this.nc.isClosed() ? undefined : `${server.server_id}/${server.client_id}`;
  }
}
