import { randomFillSync } from 'node:crypto';

import {
  type Context,
  context,
  INVALID_SPANID,
  INVALID_TRACEID,
  isSpanContextValid,
  type Span,
  type SpanOptions,
  trace,
  TraceFlags,
  type Tracer,
} from '@opentelemetry/api';
import { isTracingSuppressed } from '@opentelemetry/core';
import { AlwaysOffSampler, ParentBasedSampler, type Sampler } from '@opentelemetry/sdk-trace-base';

/**
 * The tracer of a process where nothing records spans (no exporter, no span processor), whose
 * provider samples with `UnrecordedTracer.sampler()`: ParentBased with AlwaysOff at the root.
 * The two halves belong together (initTracing hands out both). There every span begun
 * under no parent, or under a parent not sampled, is a non-recording span: fresh span id, the
 * parent's trace id and trace state (or a fresh trace id), sampled flag off. The SDK's tracer
 * comes to that answer through sampler, attribute sanitising, span metrics and id generation
 * (3.7 % of the gateway's busy CPU per records query, two spans a query); this answers the same
 * span context directly. What can record (a sampled parent: ParentBased keeps a caller's
 * sampled trace sampled) and suppressed tracing go to the SDK's tracer as before.
 */
export class UnrecordedTracer implements Tracer {
  constructor(private readonly sdk: Tracer) {}

  /**
   * The sampler this tracer answers for, to give the provider whose tracer it wraps: nothing
   * recorded at the root or under an unsampled parent, a sampled parent's trace kept sampled.
   */
  static sampler(): Sampler {
    return new ParentBasedSampler({ root: new AlwaysOffSampler() });
  }

  startSpan(name: string, options: SpanOptions = {}, ctx: Context = context.active()): Span {
    const parent = options.root ? undefined : trace.getSpanContext(ctx);
    const valid = parent !== undefined && isSpanContextValid(parent);
    if ((valid && (parent.traceFlags & TraceFlags.SAMPLED) !== 0) || isTracingSuppressed(ctx))
      return this.sdk.startSpan(name, options, ctx);
    return trace.wrapSpanContext({
      traceId: valid ? parent.traceId : randomId(16),
      spanId: randomId(8),
      traceFlags: TraceFlags.NONE,
      traceState: valid ? parent.traceState : undefined,
    });
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(name: string, options: SpanOptions, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    options: SpanOptions,
    ctx: Context,
    fn: F,
  ): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    a: SpanOptions | F,
    b?: Context | F,
    c?: F,
  ): ReturnType<F> {
    // The SDK tracer's three forms: (fn), (options, fn), (options, context, fn); in the last, a
    // null or undefined context means the active one, as there.
    const fn = (c ?? (typeof b === 'function' ? b : a)) as (span: Span) => ReturnType<F>;
    const options = typeof a === 'function' ? undefined : a;
    const parent = (c !== undefined ? (b as Context | null | undefined) : undefined) ?? context.active();
    const span = this.startSpan(name, options, parent);
    return context.with(trace.setSpan(parent, span), fn, undefined, span);
  }
}

// Ids from a pool of random bytes, refilled 4 KiB at a time: one native call per id instead of
// the SDK's Math.random per 4 bytes. Ids are correlation handles, not secrets.
const pool = Buffer.allocUnsafe(4096);
let used = pool.length;

/** `bytes` random bytes as lower-case hex, never all zeros (an invalid trace or span id). */
function randomId(bytes: 8 | 16): string {
  for (;;) {
    if (used + bytes > pool.length) {
      randomFillSync(pool);
      used = 0;
    }
    const id = pool.toString('hex', used, used + bytes);
    used += bytes;
    if (id !== INVALID_SPANID && id !== INVALID_TRACEID) return id;
  }
}
