import { AsyncResource } from 'node:async_hooks';

import { currentScope, runInScope, runOutsideScope } from './scope.js';

/**
 * What every log line written while handling one request should carry. Pass a plain,
 * extensible object (never frozen or sealed): per-request memos live on it as symbol-keyed
 * properties (the gateway's ControlHead keeps its CONTROL sequence answer there), and a
 * context that refuses them makes those checks fail.
 */
export interface RequestContext {
  requestId: string;
}

// One store per process, shared with OpenTelemetry's context (scope.ts): the HTTP and NATS
// edges enter it, the logger reads it.

/** Runs `fn` (and everything it awaits) with `ctx` as the current request context. */
export function runWithRequestContext<T>(ctx: RequestContext, fn: () => T): T {
  const scope = currentScope();
  return runInScope(
    scope?.otel ? { request: ctx, otel: scope.otel, otelOwner: scope.otelOwner } : { request: ctx },
    fn,
  );
}

/** The request context of the code running now, if it was entered through runWithRequestContext. */
export function currentRequestContext(): RequestContext | undefined {
  return currentScope()?.request;
}

// Made as the process loads this module, before any request: in its scope no AsyncLocalStorage
// has a store (neither ours nor any library's).
const root = new AsyncResource('context-gateway.detached');

/**
 * Runs `fn` (and everything it starts: timers, listeners, promise chains) outside the current
 * request: no request id, no active span. For background work that a request merely set off
 * and that outlives it (an upstream listener, a pooled connection, a retry timer): its logs
 * and spans must not carry the ids of whichever request happened to start it.
 */
export function runDetached<T>(fn: () => T): T {
  return root.runInAsyncScope(() => runOutsideScope(fn));
}
