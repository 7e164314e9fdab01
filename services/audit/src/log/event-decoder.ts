import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';

import { type DecodedBatch, decodePacked, emptyBatch, packPayloads, type Payload } from './event-decoding.js';

/** Inline decoding hands the event loop back after this many events. */
const INLINE_SLICE = 250;

interface Pending {
  resolve: (batch: DecodedBatch) => void;
  reject: (error: Error) => void;
}

interface DecoderThread {
  worker: Worker;
  pending: Map<number, Pending>;
}

/**
 * Decodes, validates and canonicalizes AUDIT messages for the log writer — about half of
 * an append's CPU, and none of it needs the log's state — on `threads` worker threads, so
 * the writer's own thread only chains, hashes, copies and acks. The batch is split evenly
 * across the threads and comes back in its original order. With 0 threads it decodes on
 * the calling thread, a slice at a time, yielding in between so the previous batch's
 * Postgres round trips are not held up.
 *
 * A thread that dies fails what it had in hand (the writer's session then restarts and
 * the messages are redelivered) and is replaced on the next call.
 */
export class EventDecoder {
  private readonly threads: (DecoderThread | undefined)[];
  private nextId = 0;

  /** `script`: the worker's entry (tests substitute their own). */
  constructor(
    threadCount: number,
    private readonly script: URL = new URL('./event-decoder.worker.js', import.meta.url),
  ) {
    this.threads = Array.from({ length: threadCount }, () => undefined);
  }

  async decode(payloads: readonly Payload[]): Promise<DecodedBatch> {
    if (payloads.length === 0) return decodePacked(packPayloads([]));
    const sliceCount =
      this.threads.length === 0
        ? Math.ceil(payloads.length / INLINE_SLICE)
        : Math.min(this.threads.length, payloads.length);
    const size = Math.ceil(payloads.length / sliceCount);
    const slices = Array.from({ length: sliceCount }, (_, i) => payloads.slice(i * size, (i + 1) * size)).filter(
      (s) => s.length > 0,
    );
    if (this.threads.length === 0) {
      const decoded: DecodedBatch[] = [];
      for (const slice of slices) {
        decoded.push(decodePacked(packPayloads(slice)));
        await yieldToEventLoop();
      }
      return concatBatches(decoded, size);
    }
    return concatBatches(await Promise.all(slices.map((slice, i) => this.onThread(i, slice))), size);
  }

  async close(): Promise<void> {
    const threads = this.threads.splice(0).filter((t): t is DecoderThread => t !== undefined);
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  private onThread(slot: number, payloads: readonly Payload[]): Promise<DecodedBatch> {
    const thread = (this.threads[slot] ??= this.spawn(slot));
    const id = this.nextId++;
    const packed = packPayloads(payloads);
    return new Promise<DecodedBatch>((resolve, reject) => {
      thread.pending.set(id, { resolve, reject });
      // Moved, not copied: both buffers were made for this message (packPayloads allocates plain ArrayBuffers).
      thread.worker.postMessage({ id, ...packed }, [
        packed.bytes.buffer as ArrayBuffer,
        packed.offsets.buffer as ArrayBuffer,
        packed.kinds.buffer as ArrayBuffer,
      ]);
    });
  }

  private spawn(slot: number): DecoderThread {
    const worker = new Worker(this.script);
    worker.unref();
    const thread: DecoderThread = { worker, pending: new Map() };
    const fail = (error: Error) => {
      if (this.threads[slot] === thread) this.threads[slot] = undefined;
      for (const waiter of thread.pending.values()) waiter.reject(error);
      thread.pending.clear();
    };
    worker.on('message', (reply: { id: number; batch?: DecodedBatch; error?: string }) => {
      const waiter = thread.pending.get(reply.id);
      thread.pending.delete(reply.id);
      if (reply.batch) waiter?.resolve(reply.batch);
      else waiter?.reject(new Error(`audit event decoder: ${reply.error ?? 'no answer'}`));
    });
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`audit event decoder thread exited (${code})`)));
    return thread;
  }
}

/** The slices' batches as one; every slice but the last held `sliceSize` messages. */
function concatBatches(parts: DecodedBatch[], sliceSize: number): DecodedBatch {
  if (parts.length === 1 && parts[0]) return parts[0];
  const out = emptyBatch();
  let canonicalBefore = 0;
  let searchBefore = 0;
  parts.forEach((part, slice) => {
    const base = slice * sliceSize;
    for (const f of part.failures) out.failures.push({ ...f, index: base + f.index });
    for (const m of part.messageIndex) out.messageIndex.push(base + m);
    for (const end of part.canonicalEnds) out.canonicalEnds.push(canonicalBefore + end);
    canonicalBefore += part.canonicalEvents.length;
    for (const end of part.searchFieldEnds) out.searchFieldEnds.push(searchBefore + end);
    searchBefore += part.searchFields.length;
    for (const key of ['eventIds', 'occurredAtMs'] as const) {
      // A loop, not push(...): a batch of batches can hold more events than a call may take arguments.
      const column = out[key] as unknown[];
      for (const value of part[key]) column.push(value);
    }
  });
  out.canonicalEvents = Buffer.concat(parts.map((part) => part.canonicalEvents));
  out.searchFields = Buffer.concat(parts.map((part) => part.searchFields));
  return out;
}
