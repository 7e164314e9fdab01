/**
 * A client stream at /mcp, bounded: `body` is passed on until the client goes away (the
 * returned stream is cancelled: the HTTP layer destroys it on disconnect), the source ends,
 * or `lifetimeMs` runs out — then `ending` (if any) is written and the stream ends. Each of
 * these calls `onClose` exactly once and cancels the source.
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
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let controller: ReadableStreamDefaultController<Uint8Array>;
  const close = (how: 'lifetime' | 'ended' | 'cancelled'): void => {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    if (how === 'lifetime' && ending) controller.enqueue(ending);
    if (how !== 'ended') void reader.cancel().catch(() => undefined);
    if (how !== 'cancelled') controller.close();
    onClose();
  };
  return new ReadableStream<Uint8Array>({
    start: (c) => {
      controller = c;
      timer = setTimeout(() => close('lifetime'), lifetimeMs);
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
}
