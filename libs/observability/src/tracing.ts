import {
  type Attributes,
  type Context,
  context,
  isSpanContextValid,
  propagation,
  ROOT_CONTEXT,
  type Span,
  type SpanKind,
  SpanStatusCode,
  trace,
  type Tracer,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  SimpleSpanProcessor,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_ERROR_TYPE, ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';

import { scrubString } from './redaction.js';
import { currentScope, enterScope, runInScope } from './scope.js';
import { UnrecordedTracer } from './unrecorded-tracer.js';

type TracesExporter = 'none' | 'console' | 'otlp';

export interface TracingOptions {
  service: string;
  exporter: TracesExporter;
  /** Base URL of an OTLP/HTTP collector, e.g. http://collector:4318; `/v1/traces` is appended. */
  otlpEndpoint?: string;
  version?: string;
  /** Extra processors next to the chosen exporter's; tests use one with an InMemorySpanExporter. */
  spanProcessors?: SpanProcessor[];
}

export interface TracingHandle {
  /** Flushes pending spans and unregisters the global provider, context manager and propagator. */
  shutdown(): Promise<void>;
}

const INSTRUMENTATION_SCOPE = '@context-gateway/observability';

/**
 * The tracer of the provider initTracing registered process-wide, until its shutdown. Kept
 * because asking the global provider per span builds a key and reads a map.
 */
let registered: { tracer: Tracer } | undefined;

/**
 * Registers the process-wide tracer provider. Context propagation (AsyncLocalStorage
 * context manager, W3C trace-context + baggage) is installed for every exporter choice,
 * so trace ids still flow through HTTP/NATS hops and into log lines with `none`.
 *
 * One provider per process: OpenTelemetry's globals keep the first one registered. A second
 * initTracing before the first's shutdown (two services booted in one test process) leaves
 * the first in place — its spans go where the first's go — and its handle shuts down only
 * its own provider, never the first's globals.
 */
export async function initTracing(opts: TracingOptions): Promise<TracingHandle> {
  const spanProcessors = [...(await exporterProcessors(opts)), ...(opts.spanProcessors ?? [])];
  const recordsNothing = spanProcessors.length === 0;
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: opts.service,
      ...(opts.version ? { [ATTR_SERVICE_VERSION]: opts.version } : {}),
    }),
    spanProcessors,
    // With nowhere for spans to go, a recorded span is pure cost (its object, attributes, end
    // time: about a tenth of the gateway's CPU per records query). Traces begun here are then
    // not sampled: their ids are still minted and propagated (log lines keep trace_id/span_id),
    // with the W3C sampled flag off — so a service after this one that exports follows the
    // flag and records none of them either (docs/operations.md, "Traces"). A caller's sampled
    // trace stays sampled through this process (ParentBased): downstream, it is still recorded.
    // UnrecordedTracer owns that sampler: the tracer handed out below answers for it.
    ...(recordsNothing ? { sampler: UnrecordedTracer.sampler() } : {}),
  });
  if (registered) return { shutdown: () => provider.shutdown() };
  provider.register({
    contextManager: new ScopeContextManager(),
    propagator: new CompositePropagator({
      propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
    }),
  });
  const sdkTracer = provider.getTracer(INSTRUMENTATION_SCOPE);
  // With that sampler, the spans it would not record are answered without the SDK's work.
  const own = { tracer: recordsNothing ? new UnrecordedTracer(sdkTracer) : sdkTracer };
  registered = own;
  return {
    async shutdown() {
      try {
        await provider.shutdown();
      } finally {
        if (registered === own) {
          registered = undefined;
          trace.disable();
          context.disable();
          propagation.disable();
        }
      }
    },
  };
}

/**
 * OpenTelemetry's context manager, its context kept in the process's one scope store beside
 * the request context (scope.ts: one AsyncLocalStorage instead of two, less work on every
 * promise) rather than in an AsyncLocalStorage of its own. Binding functions and event
 * emitters to a context is the parent class's, which goes through `with`; the parent's own
 * store is made but never entered, so it costs nothing.
 */
class ScopeContextManager extends AsyncLocalStorageContextManager {
  #enabled = false;

  override active(): Context {
    const scope = currentScope();
    // Another manager's context (one from before a shutdown and a new initTracing) is not ours.
    return (this.#enabled && scope?.otelOwner === this && scope.otel) || ROOT_CONTEXT;
  }

  override with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    otel: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    const cb = thisArg == null ? fn : (fn.bind(thisArg) as F);
    const scope = currentScope();
    // Disabled (unregistered), or this context is current already: nothing to enter.
    if (!this.#enabled || (scope?.otel === otel && scope.otelOwner === this)) return cb(...args);
    return runInScope(
      scope?.request ? { request: scope.request, otel, otelOwner: this } : { otel, otelOwner: this },
      cb,
      ...args,
    );
  }

  override attach(otel: Context): ReturnType<AsyncLocalStorageContextManager['attach']> {
    const previous = currentScope();
    if (!this.#enabled) return { dispose: () => undefined };
    enterScope(previous?.request ? { request: previous.request, otel, otelOwner: this } : { otel, otelOwner: this });
    let disposed = false;
    return {
      dispose: () => {
        if (disposed) return;
        disposed = true;
        enterScope(previous);
      },
    };
  }

  override enable(): this {
    this.#enabled = true;
    return this;
  }

  override disable(): this {
    this.#enabled = false;
    return this;
  }
}

async function exporterProcessors(opts: TracingOptions): Promise<SpanProcessor[]> {
  switch (opts.exporter) {
    case 'none':
      return [];
    case 'console':
      // Development aid: print each span as it ends, no batching delay.
      return [new SimpleSpanProcessor(new ConsoleSpanExporter())];
    case 'otlp': {
      if (!opts.otlpEndpoint) {
        throw new Error('tracing exporter "otlp" needs otlpEndpoint (e.g. http://collector:4318)');
      }
      const url = `${opts.otlpEndpoint.replace(/\/+$/, '')}/v1/traces`;
      // Loaded only here: the exporter and its transformer (sdk-metrics, sdk-logs, ...) are
      // some 150 modules, compiled by every service at boot although the default is 'none'.
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
      return [new BatchSpanProcessor(new OTLPTraceExporter({ url }))];
    }
  }
}

/** The tracer for manual spans; before initTracing it hands out non-recording spans. */
export function tracer(): Tracer {
  return registered?.tracer ?? trace.getTracer(INSTRUMENTATION_SCOPE);
}

/** Writes traceparent/tracestate (and baggage) of the active context through `set`. */
export function injectTraceHeaders(set: (key: string, value: string) => void): void {
  propagation.inject(
    context.active(),
    {},
    {
      set: (_carrier, key, value) => set(key, value),
    },
  );
}

/**
 * Reads incoming trace headers into a Context to pass as `parent` to withSpan. Built on
 * ROOT_CONTEXT, not the active one: an inbound message starts from what its sender says,
 * never from whatever context the receiving loop happened to be running in.
 */
export function extractTraceContext(get: (key: string) => string | undefined): Context {
  return propagation.extract(
    ROOT_CONTEXT,
    {},
    {
      get: (_carrier, key) => get(key),
      keys: () => [],
    },
  );
}

/**
 * Runs `fn` inside a new active span (child of `parent`, or of the active span), then
 * ends it. A throw is recorded as an exception event with ERROR status and rethrown;
 * the recorded message is scrubbed because span data leaves the process too.
 */
export function withSpan<T>(
  name: string,
  opts: { kind: SpanKind; attributes?: Attributes; parent?: Context },
  fn: (span: Span) => Promise<T> | T,
): Promise<T> {
  const parent = opts.parent ?? context.active();
  const spanOptions = { kind: opts.kind, ...(opts.attributes ? { attributes: opts.attributes } : {}) };
  return tracer().startActiveSpan(name, spanOptions, parent, (span) =>
    // A span that records nothing (not sampled: the default with no exporter) has nothing to
    // mark or end: `fn`'s own promise is the answer, without the async wrapper and its awaits
    // (each promise runs AsyncLocalStorage's promise hook; this is per RPC, both ends).
    span.isRecording() ? recorded(span, fn) : settled(fn, span),
  );
}

async function recorded<T>(span: Span, fn: (span: Span) => Promise<T> | T): Promise<T> {
  try {
    return await fn(span);
  } catch (error) {
    markFailed(span, error);
    throw error;
  } finally {
    span.end();
  }
}

/** `fn(span)` as a promise: its own when it returns one, and a synchronous throw as a rejection. */
function settled<T>(fn: (span: Span) => Promise<T> | T, span: Span): Promise<T> {
  try {
    return Promise.resolve(fn(span));
  } catch (error) {
    return Promise.reject(error);
  }
}

function markFailed(span: Span, error: unknown): void {
  const isError = error instanceof Error;
  const message = scrubString(isError ? error.message : String(error));
  span.recordException({
    name: isError ? error.name : 'Error',
    message,
    ...(isError && error.stack ? { stack: scrubString(error.stack) } : {}),
  });
  span.setStatus({ code: SpanStatusCode.ERROR, message });
  // AppError and Node system errors carry a stable code: the best `error.type` there is.
  const code = (error as { code?: unknown } | null)?.code;
  span.setAttribute(ATTR_ERROR_TYPE, typeof code === 'string' ? code : isError ? error.name : 'unknown');
}

/** Ids of the active span, for log correlation; empty when no valid span is active. */
export function activeTraceIds(): { traceId?: string; spanId?: string } {
  const spanContext = trace.getActiveSpan()?.spanContext();
  if (!spanContext || !isSpanContextValid(spanContext)) return {};
  return { traceId: spanContext.traceId, spanId: spanContext.spanId };
}
