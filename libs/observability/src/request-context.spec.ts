import { AsyncLocalStorage } from 'node:async_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';

import { afterEach, describe, expect, it } from '@jest/globals';
import { context, ROOT_CONTEXT, SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { currentRequestContext, runDetached, runWithRequestContext } from './request-context.js';
import { activeTraceIds, initTracing, type TracingHandle, withSpan } from './tracing.js';

/**
 * The request context and OpenTelemetry's active context share one store (scope.ts): each
 * must behave as if it had its own, whichever is entered inside the other and across awaits.
 */
describe('request context beside the active span', () => {
  let handle: TracingHandle | undefined;

  const init = async () => {
    handle = await initTracing({
      service: 'svc-test',
      exporter: 'none',
      spanProcessors: [new SimpleSpanProcessor(new InMemorySpanExporter())],
    });
  };

  afterEach(async () => {
    await handle?.shutdown();
    handle = undefined;
  });

  // Node 20 keeps each enabled AsyncLocalStorage's store on every promise made, under a
  // symbol of its own (a promise hook copies it). Where AsyncLocalStorage rides on
  // AsyncContextFrame instead (Node 24 on, or --experimental-async-context-frame), promises
  // carry no stores at all and there is nothing to count: asked of the runtime, not its version.
  const promisesCarryStores = (() => {
    const probe = new AsyncLocalStorage<true>();
    const carries = probe.run(true, () => Object.getOwnPropertySymbols(Promise.resolve()).length > 0);
    probe.disable();
    return carries;
  })();

  // First in the file: before it, neither context has been entered in this process.
  (promisesCarryStores ? it : it.skip)('costs every promise one store more, not one per kind of context', async () => {
    // Jest's own stores are on every promise already.
    const before = Object.getOwnPropertySymbols(Promise.resolve()).length;
    await init();
    const inside = await runWithRequestContext({ requestId: 'r1' }, () =>
      withSpan('outer', { kind: SpanKind.SERVER }, () => Object.getOwnPropertySymbols(Promise.resolve()).length),
    );
    expect(inside - before).toBe(1);
  });

  it('a span entered inside a request keeps the request, and a request entered inside a span keeps the span', async () => {
    await init();
    await runWithRequestContext({ requestId: 'r1' }, () =>
      withSpan('outer', { kind: SpanKind.SERVER }, async (span) => {
        await nextTurn();
        expect(currentRequestContext()).toEqual({ requestId: 'r1' });
        expect(activeTraceIds().spanId).toBe(span.spanContext().spanId);
        await runWithRequestContext({ requestId: 'r2' }, async () => {
          await nextTurn();
          expect(currentRequestContext()).toEqual({ requestId: 'r2' });
          expect(activeTraceIds().spanId).toBe(span.spanContext().spanId);
        });
        // Leaving the inner request leaves the outer one and the span as they were.
        expect(currentRequestContext()).toEqual({ requestId: 'r1' });
        expect(activeTraceIds().spanId).toBe(span.spanContext().spanId);
      }),
    );
    expect(currentRequestContext()).toBeUndefined();
    expect(activeTraceIds()).toEqual({});
  });

  it('a context entered from the root (an inbound message) leaves the request context alone', async () => {
    await init();
    await runWithRequestContext({ requestId: 'r1' }, () =>
      withSpan('outer', { kind: SpanKind.SERVER }, async () => {
        await context.with(ROOT_CONTEXT, async () => {
          await nextTurn();
          expect(activeTraceIds()).toEqual({});
          expect(currentRequestContext()).toEqual({ requestId: 'r1' });
        });
      }),
    );
  });

  it('binds a function to the context it was bound in, and the request it runs in', async () => {
    await init();
    const bound = await withSpan('outer', { kind: SpanKind.SERVER }, (span) => ({
      fn: context.bind(context.active(), () => [activeTraceIds().spanId, currentRequestContext()?.requestId]),
      spanId: span.spanContext().spanId,
    }));
    expect(runWithRequestContext({ requestId: 'r3' }, bound.fn)).toEqual([bound.spanId, 'r3']);
  });

  it('detached work has neither the request nor the span', async () => {
    await init();
    const seen = await runWithRequestContext({ requestId: 'r1' }, () =>
      withSpan('outer', { kind: SpanKind.SERVER }, () =>
        runDetached(async () => {
          await nextTurn();
          return [currentRequestContext(), activeTraceIds()];
        }),
      ),
    );
    expect(seen).toEqual([undefined, {}]);
  });

  it('keeps the request context with tracing shut down (no context manager registered)', async () => {
    await init();
    await handle?.shutdown();
    handle = undefined;
    const seen = await runWithRequestContext({ requestId: 'r4' }, async () => {
      await context.with(ROOT_CONTEXT, () => nextTurn());
      return currentRequestContext();
    });
    expect(seen).toEqual({ requestId: 'r4' });
  });
});
