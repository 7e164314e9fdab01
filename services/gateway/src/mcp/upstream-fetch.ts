import { checkOutboundUrl, guardedLookup, type OutboundPolicy } from '@context-gateway/service-kit';
import { Agent, fetch as undiciFetch } from 'undici';

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

/**
 * The fetch the gateway's MCP client uses upstream: guarded addresses, no redirects, every
 * exchange bounded by `timeoutMs` (also while the body streams) and every answer by
 * `maxBytes` (counted as it arrives; the stream fails past it, nothing is buffered whole).
 */
export function upstreamFetch(options: { policy: UpstreamPolicy; timeoutMs: number; maxBytes: number }): {
  fetch: FetchLike;
  close: () => Promise<void>;
} {
  const agent = new Agent({ connect: { lookup: guardedLookup(options.policy) }, connections: 64 });
  const fetch: FetchLike = async (input, init) => {
    const url = new URL(String(input));
    checkUpstreamUrl(url.href, options.policy);
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
    let res;
    try {
      res = await undiciFetch(url, {
        ...(init as Parameters<typeof undiciFetch>[1]),
        redirect: 'manual',
        signal: controller.signal,
        dispatcher: agent,
      });
    } catch (error) {
      done();
      throw error;
    }
    const declared = Number(res.headers.get('content-length') ?? 'NaN');
    if (Number.isFinite(declared) && declared > options.maxBytes) {
      done();
      await res.body?.cancel();
      throw new UpstreamTooLargeError(options.maxBytes);
    }
    if (!res.body) {
      done();
      return res;
    }
    let read = 0;
    const limited = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, stream) {
          read += chunk.byteLength;
          if (read > options.maxBytes) {
            done();
            stream.error(new UpstreamTooLargeError(options.maxBytes));
          } else stream.enqueue(chunk);
        },
        flush: done,
      }),
    );
    return new Response(limited as ReadableStream, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers as unknown as Headers,
    });
  };
  return { fetch, close: () => agent.close() };
}
