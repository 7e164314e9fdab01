import { checkOutboundUrl, guardedLookup, type OutboundPolicy } from '@context-gateway/service-kit';
import { Agent, type Dispatcher } from 'undici';

/** Where the gateway may send an upstream MCP request (an org admin chose the URL). */
export type UpstreamPolicy = OutboundPolicy;

/** Checks a server URL when an admin registers it, and before every exchange (the shared SSRF guard). */
export function checkUpstreamUrl(raw: string, policy: UpstreamPolicy): URL {
  return checkOutboundUrl(raw, policy, 'The MCP server URL');
}

/** Thrown (as the body's stream error) when an upstream answer exceeds the byte limit. */
export class UpstreamTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`The upstream answer exceeded ${limit} bytes`);
  }
}

export type FetchLike = (url: string | URL, init?: RequestInit) => Promise<Response>;

/** Statuses whose answer has no body (a Response refuses one). */
const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

/**
 * The fetch the gateway's MCP client uses upstream: guarded addresses, no redirects, every
 * exchange bounded by `timeoutMs` (also while the body streams) and every answer by
 * `maxBytes` (counted as it arrives; the stream fails past it, nothing is buffered whole).
 *
 * It speaks to undici's dispatcher directly rather than through undici's fetch: the SDK
 * only ever sends a string body, which goes out in one write with its headers (fetch turns
 * it into a web stream written chunk by chunk), and the answer is one web stream over the
 * socket's body with the byte limit counted in it (fetch's stream piped through a counting
 * TransformStream was three); the profile of `pnpm bench:mcp` showed fetch's machinery as
 * the gateway's biggest single cost per call (docs/perf/README.md).
 */
export function upstreamFetch(options: { policy: UpstreamPolicy; timeoutMs: number; maxBytes: number }): {
  fetch: FetchLike;
  close: () => Promise<void>;
} {
  const agent = new Agent({ connect: { lookup: guardedLookup(options.policy) }, connections: 64 });
  const fetch: FetchLike = async (input, init) => {
    const url = new URL(String(input));
    checkUpstreamUrl(url.href, options.policy);
    const body = init?.body;
    if (body != null && typeof body !== 'string' && !(body instanceof Uint8Array))
      throw new TypeError('The upstream fetch sends only string or byte bodies');
    // One timer for the whole exchange, the body's streaming included (cheaper than
    // AbortSignal.timeout + AbortSignal.any on every request).
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new DOMException('The upstream did not answer in time', 'TimeoutError')),
      options.timeoutMs,
    );
    // A body nobody reads to the end is still let go of when the timer fires.
    timer.unref();
    const outer = init?.signal;
    const onAbort = () => controller.abort(outer?.reason);
    const done = () => {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onAbort);
    };
    // However the exchange ends early (timer, caller, a body error), the listener goes.
    controller.signal.addEventListener('abort', done, { once: true });
    if (outer?.aborted) onAbort();
    else outer?.addEventListener('abort', onAbort, { once: true });
    let res: Dispatcher.ResponseData;
    try {
      res = await agent.request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: init?.method ?? 'GET',
        headers: headerObject(init?.headers),
        body: body ?? null,
        signal: controller.signal,
      });
    } catch (error) {
      done();
      throw error;
    }
    const headers = new Headers();
    for (const [name, value] of Object.entries(res.headers)) {
      if (Array.isArray(value)) for (const v of value) headers.append(name, v);
      else if (value !== undefined) headers.set(name, value);
    }
    const declared = Number(headers.get('content-length') ?? 'NaN');
    if (Number.isFinite(declared) && declared > options.maxBytes) {
      done();
      discard(res.body);
      throw new UpstreamTooLargeError(options.maxBytes);
    }
    const answerInit = { status: res.statusCode, headers };
    if (NULL_BODY_STATUSES.has(res.statusCode) || init?.method === 'HEAD') {
      done();
      discard(res.body);
      return new Response(null, answerInit);
    }
    return new Response(limitedBody(res.body, options.maxBytes, controller.signal, done), answerInit);
  };
  return { fetch, close: () => agent.close() };
}

/** `body` as one web stream, failing past `maxBytes` or when `signal` aborts; `done` once it ends however. */
function limitedBody(
  body: Dispatcher.ResponseData['body'],
  maxBytes: number,
  signal: AbortSignal,
  done: () => void,
): ReadableStream<Uint8Array> {
  const chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let read = 0;
  const stop = () => discard(body, signal.reason);
  signal.addEventListener('abort', stop, { once: true });
  const finish = () => {
    signal.removeEventListener('abort', stop);
    done();
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next: IteratorResult<Buffer> = await chunks.next();
        if (next.done) {
          finish();
          controller.close();
          return;
        }
        const value = next.value;
        read += value.byteLength;
        if (read > maxBytes) {
          finish();
          discard(body);
          controller.error(new UpstreamTooLargeError(maxBytes));
        } else controller.enqueue(value);
      } catch (error) {
        finish();
        controller.error(signal.aborted ? signal.reason : error);
      }
    },
    cancel() {
      finish();
      discard(body);
    },
  });
}

/** Lets go of an answer's body unread (its connection is not reused); the error it then emits goes nowhere. */
function discard(body: Dispatcher.ResponseData['body'], reason?: unknown): void {
  body.on('error', () => undefined);
  body.destroy(reason as Error | undefined);
}

/** Request headers as undici's dispatcher takes them. */
function headerObject(headers: RequestInit['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  if (headers === undefined) return out;
  // The SDK passes a Headers: read as it is, not copied first.
  (headers instanceof Headers ? headers : new Headers(headers)).forEach((value, name) => (out[name] = value));
  return out;
}
