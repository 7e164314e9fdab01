import { AppError } from '@context-gateway/errors';
import { currentRequestContext, type RequestContext } from '@context-gateway/observability';
import { streams } from '@context-gateway/proto';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';

/** One answer to "what is the stream's last sequence": the number, or why there is none. */
type StreamAnswer = { ok: true; seq: number } | { ok: false; error: AppError };

/**
 * "What is the CONTROL stream's last sequence now?", asked of the NATS server for everything
 * a request must see (policy changes, grant and application changes, token and API key
 * revocations), so a change whose call returned before the request began is known to it.
 *
 * Cheap by sharing, never by guessing:
 * - concurrent callers share one question in flight, but only one *sent after* they asked;
 * - within one request (the HTTP edge's request context) the first answer serves every later
 *   check of that request: it was asked after the request began, which is all a check needs.
 */
export class ControlHead {
  private pending: ((answer: StreamAnswer) => void)[] = [];
  private asking = false;
  private jsm: JetStreamManager | undefined;
  private readonly perRequest = new WeakMap<RequestContext, Promise<number>>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly unavailable: () => AppError = () =>
      new AppError('policy_unavailable', 'The policy change stream is unreachable'),
  ) {}

  /** The stream's last sequence, asked after this call began (or after the current request began). */
  latestSeq(): Promise<number> {
    const context = currentRequestContext();
    const known = context && this.perRequest.get(context);
    if (known) return known;
    const asked = this.ask();
    if (context) {
      this.perRequest.set(context, asked);
      // A failed question is not remembered: a retry in the same request asks again.
      asked.catch(() => this.perRequest.delete(context));
    }
    return asked;
  }

  private ask(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.pending.push((answer) => (answer.ok ? resolve(answer.seq) : reject(answer.error)));
      if (!this.asking) void this.askLoop();
    });
  }

  private async askLoop(): Promise<void> {
    this.asking = true;
    while (this.pending.length > 0) {
      // Everyone waiting now asked before this request is sent: it answers all of them.
      const batch = this.pending;
      this.pending = [];
      try {
        this.jsm ??= await jetstreamManager(this.nc);
        const info = await this.jsm.streams.info(streams.control.name);
        for (const done of batch) done({ ok: true, seq: info.state.last_seq });
      } catch (error) {
        const failure = this.unavailable();
        failure.cause = error;
        for (const done of batch) done({ ok: false, error: failure });
      }
    }
    this.asking = false;
  }
}
