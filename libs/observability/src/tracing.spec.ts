import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { context as otelContext, propagation, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import {
  activeTraceIds,
  extractTraceContext,
  initTracing,
  injectTraceHeaders,
  type TracingHandle,
  type TracingOptions,
  withSpan,
} from './tracing.js';

describe('tracing', () => {
  let handle: TracingHandle | undefined;
  let memory: InMemorySpanExporter;

  async function init(opts: Partial<TracingOptions> = {}) {
    memory = new InMemorySpanExporter();
    handle = await initTracing({
      service: 'svc-test',
      exporter: 'none',
      spanProcessors: [new SimpleSpanProcessor(memory)],
      ...opts,
    });
  }

  afterEach(async () => {
    await handle?.shutdown();
    handle = undefined;
    jest.restoreAllMocks();
  });

  it('inject → extract keeps the trace id and parents the receiving span', async () => {
    await init();
    const headers = new Map<string, string>();
    const sent = await withSpan('nats publish', { kind: SpanKind.PRODUCER }, (span) => {
      injectTraceHeaders((k, v) => headers.set(k, v));
      return span.spanContext();
    });
    expect(headers.get('traceparent')).toBe(`00-${sent.traceId}-${sent.spanId}-01`);

    // The receiver runs somewhere with no active span: only the headers link them.
    expect(activeTraceIds()).toEqual({});
    const parent = extractTraceContext((k) => headers.get(k));
    const received = await withSpan('nats handle', { kind: SpanKind.CONSUMER, parent }, (span) => span.spanContext());

    expect(received.traceId).toBe(sent.traceId);
    const handled = memory.getFinishedSpans().find((s) => s.name === 'nats handle');
    expect(handled?.kind).toBe(SpanKind.CONSUMER);
    expect(handled?.parentSpanContext?.spanId).toBe(sent.spanId);
    expect(handled?.parentSpanContext?.isRemote).toBe(true);
  });

  it('carries baggage through the same headers', async () => {
    await init();
    const headers = new Map<string, string>();
    const bag = propagation.createBaggage({ 'org.id': { value: 'org_1' } });
    await otelContext.with(propagation.setBaggage(otelContext.active(), bag), () =>
      withSpan('send', { kind: SpanKind.CLIENT }, () => injectTraceHeaders((k, v) => headers.set(k, v))),
    );
    const extracted = extractTraceContext((k) => headers.get(k));
    expect(propagation.getBaggage(extracted)?.getEntry('org.id')?.value).toBe('org_1');
  });

  it('starts a new trace when the message carries no trace headers', async () => {
    await init();
    const parent = extractTraceContext(() => undefined);
    await withSpan('orphan', { kind: SpanKind.SERVER, parent }, () => undefined);
    const [span] = memory.getFinishedSpans();
    expect(span?.parentSpanContext).toBeUndefined();
  });

  it('nests spans through awaits without an explicit parent', async () => {
    await init();
    await withSpan('outer', { kind: SpanKind.SERVER, attributes: { 'http.route': '/q' } }, async () => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      await withSpan('inner', { kind: SpanKind.INTERNAL }, () => 'ok');
    });
    const spans = memory.getFinishedSpans();
    const outer = spans.find((s) => s.name === 'outer');
    const inner = spans.find((s) => s.name === 'inner');
    expect(inner?.parentSpanContext?.spanId).toBe(outer?.spanContext().spanId);
    expect(outer?.attributes['http.route']).toBe('/q');
    expect(outer?.resource.attributes['service.name']).toBe('svc-test');
  });

  it('returns what fn returns and ends the span', async () => {
    await init();
    await expect(withSpan('sync', { kind: SpanKind.INTERNAL }, () => 7)).resolves.toBe(7);
    await expect(withSpan('async', { kind: SpanKind.INTERNAL }, () => Promise.resolve('v'))).resolves.toBe('v');
    expect(memory.getFinishedSpans().map((s) => [s.name, s.ended])).toEqual([
      ['sync', true],
      ['async', true],
    ]);
  });

  it('records a thrown error (scrubbed), sets ERROR status and rethrows it', async () => {
    await init();
    const boom = Object.assign(new Error('refresh failed for Bearer span-secret'), { code: 'upstream_failed' });
    await expect(withSpan('refresh', { kind: SpanKind.INTERNAL }, () => Promise.reject(boom))).rejects.toBe(boom);
    const [span] = memory.getFinishedSpans();
    expect(span?.ended).toBe(true);
    expect(span?.status).toEqual({ code: SpanStatusCode.ERROR, message: 'refresh failed for Bearer [redacted]' });
    expect(span?.attributes['error.type']).toBe('upstream_failed');
    const event = span?.events.find((e) => e.name === 'exception');
    expect(event?.attributes?.['exception.message']).toBe('refresh failed for Bearer [redacted]');
    expect(JSON.stringify(span?.events)).not.toContain('span-secret');
  });

  it("'none': a trace begun here is not recorded, yet its ids propagate", async () => {
    handle = await initTracing({ service: 'svc-test', exporter: 'none' });
    const log = jest.spyOn(console, 'dir').mockImplementation(() => undefined);
    const headers: Record<string, string> = {};
    const seen = await withSpan('quiet', { kind: SpanKind.CLIENT }, (span) => {
      injectTraceHeaders((k, v) => (headers[k] = v));
      return { recording: span.isRecording(), ids: activeTraceIds() };
    });
    // A trace begun here is not sampled (nothing would receive its spans), but it has ids.
    expect(seen.recording).toBe(false);
    expect(headers.traceparent).toBe(`00-${seen.ids.traceId}-${seen.ids.spanId}-00`);
    expect(seen.ids.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(log).not.toHaveBeenCalled();
  });

  it("'none': an unrecorded span still answers like a recorded one, its ids active throughout", async () => {
    handle = await initTracing({ service: 'svc-test', exporter: 'none' });
    const boom = new Error('thrown before any promise');
    // A synchronous value or throw, and an async fn: the same promise outcomes as with a recorded span.
    await expect(withSpan('sync', { kind: SpanKind.INTERNAL }, () => 7)).resolves.toBe(7);
    const thrown = withSpan('throws', { kind: SpanKind.INTERNAL }, () => {
      throw boom;
    });
    await expect(thrown).rejects.toBe(boom);
    await expect(withSpan('rejects', { kind: SpanKind.INTERNAL }, () => Promise.reject(boom))).rejects.toBe(boom);
    // After an await inside fn, its span is still the active one (log lines and headers carry it).
    const seen = await withSpan('async', { kind: SpanKind.CLIENT }, async (span) => {
      await new Promise((resolve) => setImmediate(resolve));
      return { own: span.spanContext().spanId, active: activeTraceIds().spanId };
    });
    expect(seen.active).toBe(seen.own);
    expect(activeTraceIds()).toEqual({});
  });

  it("'none' keeps a caller's sampled trace sampled for the services after it", async () => {
    handle = await initTracing({ service: 'svc-test', exporter: 'none' });
    const parent = extractTraceContext((k) =>
      k === 'traceparent' ? '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' : undefined,
    );
    const headers: Record<string, string> = {};
    await withSpan('relayed', { kind: SpanKind.SERVER, parent }, () => injectTraceHeaders((k, v) => (headers[k] = v)));
    expect(headers.traceparent).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
  });

  it("'console' prints each finished span", async () => {
    const dir = jest.spyOn(console, 'dir').mockImplementation(() => undefined);
    await init({ exporter: 'console' });
    const ids = await withSpan('printed', { kind: SpanKind.INTERNAL }, (span) => span.spanContext());
    // The in-memory processor still sees the span next to the console one.
    expect(memory.getFinishedSpans().map((s) => s.name)).toEqual(['printed']);
    await handle?.shutdown();
    handle = undefined;
    expect(dir).toHaveBeenCalledWith(
      expect.objectContaining({ name: 'printed', traceId: ids.traceId, id: ids.spanId }),
      expect.anything(),
    );
  });

  it("'otlp' refuses to start without an endpoint", async () => {
    await expect(initTracing({ service: 's', exporter: 'otlp' })).rejects.toThrow(/otlpEndpoint/);
  });

  it("'otlp' sends finished spans to the collector's /v1/traces", async () => {
    // A collector stand-in: the exporter is loaded on demand, so this is the path that proves it loads.
    const received: { url: string | undefined; body: string }[] = [];
    const collector = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ url: req.url, body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = collector.address() as AddressInfo;
      handle = await initTracing({ service: 'svc-otlp', exporter: 'otlp', otlpEndpoint: `http://127.0.0.1:${port}/` });
      const ids = await withSpan('exported', { kind: SpanKind.INTERNAL }, (span) => span.spanContext());
      // Shutdown flushes the batch processor: the span leaves before it returns.
      await handle.shutdown();
      handle = undefined;
      expect(received.map((r) => r.url)).toEqual(['/v1/traces']);
      expect(received[0]?.body).toContain('"exported"');
      expect(received[0]?.body).toContain(ids.traceId);
      expect(received[0]?.body).toContain('svc-otlp');
    } finally {
      await new Promise((resolve) => collector.close(resolve));
    }
  });

  it("a shut-down provider's tracer is not used any more: the next one records", async () => {
    await init();
    const first = memory;
    await handle?.shutdown();
    await init();
    await withSpan('after', { kind: SpanKind.INTERNAL }, () => undefined);
    expect(memory.getFinishedSpans().map((s) => s.name)).toEqual(['after']);
    expect(first.getFinishedSpans()).toEqual([]);
  });

  it('a second initTracing before the first shutdown leaves the registered provider in charge', async () => {
    await init();
    const first = { handle, memory };
    await init();
    const second = { handle, memory };
    try {
      await withSpan('both running', { kind: SpanKind.INTERNAL }, () => undefined);
      expect(first.memory.getFinishedSpans().map((s) => s.name)).toEqual(['both running']);
      expect(second.memory.getFinishedSpans()).toEqual([]);
      // The second's shutdown is its own: the first still records and propagates.
      await second.handle?.shutdown();
      const headers = new Map<string, string>();
      await withSpan('first alone', { kind: SpanKind.CLIENT }, () => injectTraceHeaders((k, v) => headers.set(k, v)));
      expect(first.memory.getFinishedSpans().map((s) => s.name)).toEqual(['both running', 'first alone']);
      expect(headers.get('traceparent')).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    } finally {
      handle = first.handle;
    }
  });

  it('a chain begun before a shutdown does not bring its span back under the next initTracing', async () => {
    await init();
    let resume!: () => void;
    const gate = new Promise<void>((resolve) => (resume = resolve));
    const old = withSpan('old', { kind: SpanKind.SERVER }, async (span) => {
      await gate;
      return { before: span.spanContext().traceId, now: activeTraceIds() };
    });
    await handle?.shutdown();
    await init();
    resume();
    const seen = await old;
    expect(seen.before).toMatch(/^[0-9a-f]{32}$/);
    expect(seen.now).toEqual({});
  });

  it('shutdown unregisters the globals so tracing can be set up again', async () => {
    await init();
    await handle?.shutdown();
    handle = undefined;
    // With nothing registered, spans are non-recording and nothing is propagated.
    const headers = new Map<string, string>();
    await withSpan('after', { kind: SpanKind.INTERNAL }, () => injectTraceHeaders((k, v) => headers.set(k, v)));
    expect(headers.size).toBe(0);
    await init();
    await withSpan('again', { kind: SpanKind.INTERNAL }, () => undefined);
    expect(memory.getFinishedSpans().map((s) => s.name)).toEqual(['again']);
  });
});
