import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { type Context, context, ROOT_CONTEXT, type Span, SpanKind, trace, TraceFlags } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import { ParentBasedSampler } from '@opentelemetry/sdk-trace-base';

import { activeTraceIds, extractTraceContext, initTracing, tracer, type TracingHandle } from './tracing.js';

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const headersOf = (flags: '00' | '01') => (key: string) =>
  ({ traceparent: `00-${TRACE}-b7ad6b7169203331-${flags}`, tracestate: 'vendor=opaque' })[key];

/** What a span answers that a caller can see: its span context and whether it records. */
function shape(span: Span) {
  const { traceId, spanId, traceFlags, traceState } = span.spanContext();
  return { recording: span.isRecording(), traceId, spanId, traceFlags, traceState: traceState?.serialize() };
}

describe('the tracer when nothing records spans (exporter none)', () => {
  let handle: TracingHandle | undefined;

  afterEach(async () => {
    await handle?.shutdown();
    handle = undefined;
    jest.restoreAllMocks();
  });

  // The SDK's own tracer from the same provider is the reference: every case answers the same
  // span context (ids aside, which are fresh), recording or not, as it does.
  const cases: [string, () => Context, SpanKind, { root?: boolean }][] = [
    ['no parent', () => ROOT_CONTEXT, SpanKind.SERVER, {}],
    ['an unsampled remote parent', () => extractTraceContext(headersOf('00')), SpanKind.SERVER, {}],
    ['a sampled remote parent', () => extractTraceContext(headersOf('01')), SpanKind.SERVER, {}],
    ['root: true under a parent', () => extractTraceContext(headersOf('00')), SpanKind.CLIENT, { root: true }],
    ['suppressed tracing', () => suppressTracing(extractTraceContext(headersOf('00'))), SpanKind.CLIENT, {}],
  ];

  it.each(cases)('answers as the SDK tracer does: %s', async (_name, parentOf, kind, extra) => {
    handle = await initTracing({ service: 'svc-test', exporter: 'none' });
    const parent = parentOf();
    const options = { kind, attributes: { 'http.route': '/x' }, ...extra };
    const ours = shape(tracer().startSpan('ours', options, parent));
    const sdk = shape(trace.getTracer('reference').startSpan('sdk', options, parent));
    const parentId = trace.getSpanContext(parent)?.traceId;
    const keepsTrace = (s: typeof sdk) => s.traceId === parentId;
    expect({ ...ours, traceId: keepsTrace(ours), spanId: ours.spanId === sdk.spanId }).toEqual({
      ...sdk,
      traceId: keepsTrace(sdk),
      spanId: sdk.spanId === '0000000000000000',
    });
    expect(ours.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(ours.spanId).toMatch(/^[0-9a-f]{16}$/);
  });

  it('answers as the SDK tracer does with OTEL_TRACES_SAMPLER=always_on set: the sampler is ours', async () => {
    const before = process.env.OTEL_TRACES_SAMPLER;
    process.env.OTEL_TRACES_SAMPLER = 'always_on';
    try {
      handle = await initTracing({ service: 'svc-test', exporter: 'none' });
    } finally {
      if (before === undefined) delete process.env.OTEL_TRACES_SAMPLER;
      else process.env.OTEL_TRACES_SAMPLER = before;
    }
    const parent = extractTraceContext(headersOf('00'));
    const sdk = trace.getTracer('reference').startSpan('sdk', {}, parent);
    expect(sdk.isRecording()).toBe(false);
    expect(tracer().startSpan('ours', {}, parent).spanContext().traceFlags).toBe(sdk.spanContext().traceFlags);
  });

  it('answers an unsampled span without the SDK sampler, with fresh ids every time', async () => {
    handle = await initTracing({ service: 'svc-test', exporter: 'none' });
    const sampler = jest.spyOn(ParentBasedSampler.prototype, 'shouldSample');
    const parent = extractTraceContext(headersOf('00'));
    const spans = Array.from({ length: 600 }, () => tracer().startSpan('s', { kind: SpanKind.SERVER }));
    const children = Array.from({ length: 10 }, () => tracer().startSpan('c', {}, parent).spanContext());
    expect(sampler).not.toHaveBeenCalled();
    // 600 spans draw more ids than one pool of random bytes holds: a refill, no repeats.
    expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(600);
    expect(new Set(spans.map((s) => s.spanContext().spanId)).size).toBe(600);
    expect(children.every((c) => c.traceId === TRACE && c.traceFlags === (TraceFlags.NONE as number))).toBe(true);
    expect(children.map((c) => c.traceState?.serialize())).toEqual(Array(10).fill('vendor=opaque'));
  });

  it('startActiveSpan makes the span active in fn, in each of its three forms, and returns its value', async () => {
    handle = await initTracing({ service: 'svc-test', exporter: 'none' });
    const parent = extractTraceContext(headersOf('00'));
    const seen = (span: Span) => ({ own: span.spanContext().spanId, active: activeTraceIds() });
    const forms = [
      tracer().startActiveSpan('a', seen),
      tracer().startActiveSpan('b', { kind: SpanKind.CLIENT }, seen),
      tracer().startActiveSpan('c', { kind: SpanKind.CLIENT }, parent, seen),
      context.with(parent, () => tracer().startActiveSpan('d', seen)),
    ];
    for (const { own, active } of forms) expect(active.spanId).toBe(own);
    expect(forms[2]?.active.traceId).toBe(TRACE);
    expect(forms[3]?.active.traceId).toBe(TRACE);
    expect(forms[0]?.active.traceId).not.toBe(TRACE);
    expect(activeTraceIds()).toEqual({});
  });

  it.each([null, undefined])(
    'startActiveSpan with context %p begins under the active one, as the SDK does',
    async (ctx) => {
      handle = await initTracing({ service: 'svc-test', exporter: 'none' });
      const parent = extractTraceContext(headersOf('00'));
      const seen = (span: Span) => ({ own: span.spanContext().spanId, active: activeTraceIds() });
      // The API's type says Context; JavaScript callers and the SDK's tracer accept null too.
      const noContext = ctx as unknown as Context;
      const ours = context.with(parent, () => tracer().startActiveSpan('e', {}, noContext, seen));
      const sdk = context.with(parent, () => trace.getTracer('reference').startActiveSpan('f', {}, noContext, seen));
      expect(ours.active.spanId).toBe(ours.own);
      expect({ ours: ours.active.traceId, sdk: sdk.active.traceId }).toEqual({ ours: TRACE, sdk: TRACE });
    },
  );
});
