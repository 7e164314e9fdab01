import { AsyncLocalStorage } from 'node:async_hooks';

/** What every log line written while handling one request should carry. */
export interface RequestContext {
  requestId: string;
}

// One store per process: the HTTP and NATS edges enter it, the logger reads it.
const storage = new AsyncLocalStorage<RequestContext>();

/** Runs `fn` (and everything it awaits) with `ctx` as the current request context. */
export function runWithRequestContext<T>(ctx: RequestContext, fn: () => T): T {
  return storage.run(ctx, fn);
}

/** The request context of the code running now, if it was entered through runWithRequestContext. */
export function currentRequestContext(): RequestContext | undefined {
  return storage.getStore();
}
