import { MsgHdrsImpl } from '@nats-io/transport-node';

/**
 * Headers every message on our bus may carry. W3C trace context (`traceparent`,
 * `tracestate`) travels too, written by libs/observability's propagator.
 */
export const Header = {
  /** `ok` or `error` on replies; an error reply's body is a contextgateway.common.v1.ErrorReply. */
  status: 'cg-status',
  /** Absolute deadline, epoch milliseconds: work that cannot finish by then is pointless. */
  deadline: 'cg-deadline',
  /** The edge request that caused this message, for log correlation across services. */
  requestId: 'cg-request-id',
} as const;

export const ReplyStatus = { ok: 'ok', error: 'error' } as const;

/**
 * Headers that never change, built and encoded once and shared by every message sent with
 * them: the RPC server's replies carry nothing but their status, and a fresh `headers()`
 * object per reply, filled through `set` (key validation, a Map, an array per key) and
 * encoded to bytes again for each, was about 1 % of a shard's CPU under `pnpm bench:query`.
 *
 * Why sharing is safe with nats.js 3.x, and the rules that keep it so:
 * - Its publish reads the headers through `encode()` alone, except that it calls `set` on them
 *   when the publish options carry `traceOnly` or `traceDestination` (message tracing). Our
 *   server never passes those; doing so with these headers throws (below) rather than
 *   tracing every later reply.
 * - The bytes `encode()` returns are not copied: the outbound DataBuffer keeps a reference to
 *   them until the next flush writes them to the socket, and across a disconnect until the
 *   reconnect resends them. So nobody may ever write to what `encode()` returns: the same
 *   array goes out with every message, possibly still queued.
 * - `set`, `append` and `delete` throw once it is built, as changing one would change every
 *   later message. That seal is all there is: the inherited public `headers` Map can still be
 *   written, and must not be (it would not even reach the wire: the bytes are encoded once).
 */
export class FixedHeaders extends MsgHdrsImpl {
  readonly #bytes: Uint8Array;
  readonly #sealed: boolean;

  constructor(entries: Readonly<Record<string, string>>) {
    super();
    for (const [key, value] of Object.entries(entries)) super.set(key, value);
    this.#bytes = super.encode();
    this.#sealed = true;
  }

  override encode(): Uint8Array {
    return this.#bytes;
  }

  override set(...args: Parameters<MsgHdrsImpl['set']>): void {
    this.#refuse();
    super.set(...args);
  }

  override append(...args: Parameters<MsgHdrsImpl['append']>): void {
    this.#refuse();
    super.append(...args);
  }

  override delete(...args: Parameters<MsgHdrsImpl['delete']>): void {
    this.#refuse();
    super.delete(...args);
  }

  #refuse(): void {
    if (this.#sealed) throw new TypeError('FixedHeaders are shared by every message sent with them: copy, then change');
  }
}

/** The headers of a reply, by its status (ReplyStatus). */
export const replyHeaders = {
  ok: new FixedHeaders({ [Header.status]: ReplyStatus.ok }),
  error: new FixedHeaders({ [Header.status]: ReplyStatus.error }),
} as const;
