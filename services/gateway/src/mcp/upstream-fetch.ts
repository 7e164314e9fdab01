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
    const timeout = AbortSignal.timeout(options.timeoutMs);
    const signal = init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    const res = await undiciFetch(url, {
      ...(init as Parameters<typeof undiciFetch>[1]),
      redirect: 'manual',
      signal,
      dispatcher: agent,
    });
    const declared = Number(res.headers.get('content-length') ?? 'NaN');
    if (Number.isFinite(declared) && declared > options.maxBytes) {
      await res.body?.cancel();
      throw new UpstreamTooLargeError(options.maxBytes);
    }
    if (!res.body) return res;
    let read = 0;
    const limited = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          read += chunk.byteLength;
          if (read > options.maxBytes) controller.error(new UpstreamTooLargeError(options.maxBytes));
          else controller.enqueue(chunk);
        },
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
