/** A client stream as boundedStream hands it back: the body, and how the server ends it early. */
export interface BoundedStream {
  body: ReadableStream<Uint8Array>;
  /**
   * Ends the stream now, as when its lifetime is up (`ending` is written), after `last` (if
   * given): the endpoint it follows is gone. What the source had not passed on yet is dropped.
   */
  end(last?: Uint8Array): void;
}

/**
 * A client stream at /mcp, bounded: `body` is passed on until the client goes away (the
 * returned stream is cancelled: the HTTP layer destroys it on disconnect), the source ends,
 * `lifetimeMs` runs out or the server ends it (`end`) — then `ending` (if any) is written
 * and the stream ends. Each of these calls `onClose` exactly once and cancels the source.
 *
 * A plain timer and the stream's own cancel, not AbortSignals: Node 20 drops the listeners
 * of `AbortSignal.any`/`AbortSignal.timeout` and of a Request's derived signal once the
 * signal is garbage-collected (nodejs/node#57736, #55428), which would leave streams, and
 * their subscriber entries, open for ever.
 */
export function boundedStream(
  body: ReadableStream<Uint8Array>,
  lifetimeMs: number,
  onClose: () => void,
  ending?: Uint8Array,
): BoundedStream {
  const reader = body.getReader();
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let controller: ReadableStreamDefaultController<Uint8Array>;
  const close = (how: 'over' | 'ended' | 'cancelled', last?: Uint8Array): void => {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    if (how === 'over' && last) controller.enqueue(last);
    if (how === 'over' && ending) controller.enqueue(ending);
    if (how !== 'ended') void reader.cancel().catch(() => undefined);
    if (how !== 'cancelled') controller.close();
    onClose();
  };
  const stream = new ReadableStream<Uint8Array>({
    start: (c) => {
      controller = c;
      timer = setTimeout(() => close('over'), lifetimeMs);
      timer.unref();
    },
    pull: async (c) => {
      const next = await reader.read().catch(() => undefined);
      if (closed) return;
      if (!next || next.done) return close('ended');
      c.enqueue(next.value);
    },
    cancel: () => close('cancelled'),
  });
  return { body: stream, end: (last) => close('over', last) };
}
