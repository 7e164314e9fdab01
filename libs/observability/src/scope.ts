import { AsyncLocalStorage } from 'node:async_hooks';

import type { Context } from '@opentelemetry/api';

import type { RequestContext } from './request-context.js';

/**
 * What the code running now is part of: the request (for logs and outgoing messages) and
 * OpenTelemetry's context (the active span). One AsyncLocalStorage holds both — the request
 * context (request-context.ts) and OpenTelemetry's context manager (ScopeContextManager,
 * tracing.ts) — because on Node 20 every enabled AsyncLocalStorage costs on every promise
 * made (a promise hook copies its store onto each new promise): two stores cost about 35 ns
 * more per promise than one. Each part is set without touching the other, as two stores did.
 * Internal to this package: the two modules are the only ways in.
 */
export interface Scope {
  readonly request?: RequestContext;
  /** OpenTelemetry's active context; none is ROOT_CONTEXT. */
  readonly otel?: Context;
  /**
   * The context manager that set `otel` (tracing.ts). An async chain outlives a tracing
   * shutdown: a manager registered after it must not hand out the old one's context.
   */
  readonly otelOwner?: object;
}

const storage = new AsyncLocalStorage<Scope>();

/** The scope of the code running now, if any. */
export function currentScope(): Scope | undefined {
  return storage.getStore();
}

/** Runs `fn` (and everything it starts) in `scope`. */
export function runInScope<A extends unknown[], R>(scope: Scope, fn: (...args: A) => R, ...args: A): R {
  return storage.run(scope, fn, ...args);
}

/** Makes `scope` current for the rest of this synchronous run and what it starts from here on. */
export function enterScope(scope: Scope | undefined): void {
  storage.enterWith(scope as Scope);
}

/** Runs `fn` (and everything it starts) in no scope. */
export function runOutsideScope<R>(fn: () => R): R {
  return storage.exit(fn);
}
