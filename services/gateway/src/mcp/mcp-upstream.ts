import { SERVICE_ENV } from '@context-gateway/service-kit';
import {
  type CallToolResult,
  Client,
  ProtocolError,
  StreamableHTTPClientTransport,
} from '@modelcontextprotocol/client';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';

import type { Env } from '../env.js';
import type { McpServerView, UpstreamTool } from './mcp-server-view.js';
import { type FetchLike, upstreamFetch, UpstreamTooLargeError } from './upstream-fetch.js';

/** Why an upstream exchange failed, in words an MCP client can show. */
export class UpstreamFailure extends Error {
  constructor(
    readonly kind: 'timeout' | 'too_large' | 'unauthorized' | 'unreachable' | 'protocol' | 'cancelled',
    message: string,
    options?: { cause?: unknown; rpcCode?: number },
  ) {
    super(message, options);
    this.rpcCode = options?.rpcCode;
  }

  /** The server's own JSON-RPC error code, when it answered with one (passed on to the agent). */
  readonly rpcCode: number | undefined;
}

/** At most this many pages of tools are read from one server (a loop guard, not a catalog limit). */
const MAX_TOOL_PAGES = 20;
/** A tool list bigger than this (JSON bytes, all pages) is refused: policy keeps at most as much per server. */
const MAX_TOOL_LIST_BYTES = 256 * 1024;

/**
 * The gateway as an MCP client of an org's remote servers: one short exchange per call, the
 * person's source token as the bearer (the caller's own token never leaves the gateway),
 * either protocol revision (`server/discover` first, `initialize` when the server is older).
 */
@Injectable()
export class McpUpstream implements OnApplicationShutdown {
  private readonly http: { fetch: FetchLike; close: () => Promise<void> };

  constructor(@Inject(SERVICE_ENV) private readonly env: Env) {
    this.http = upstreamFetch({
      policy: { allowHttp: env.MCP_ALLOW_INSECURE_UPSTREAMS, allowPrivateNetworks: env.MCP_ALLOW_PRIVATE_UPSTREAMS },
      timeoutMs: env.MCP_UPSTREAM_TIMEOUT_MS,
      maxBytes: env.MCP_MAX_RESULT_BYTES,
    });
  }

  async onApplicationShutdown(): Promise<void> {
    await this.http.close();
  }

  /** Every tool the server lists (all pages), and how long the list may be used if it says. */
  async listTools(server: Pick<McpServerView, 'url'>, token: string | undefined): Promise<{ tools: UpstreamTool[] }> {
    return this.exchange(server, token, undefined, async (client, signal) => {
      const tools: UpstreamTool[] = [];
      let cursor: string | undefined;
      let bytes = 0;
      for (let page = 0; page < MAX_TOOL_PAGES; page++) {
        const result = await client.listTools(cursor ? { cursor } : {}, {
          signal,
          timeout: this.env.MCP_UPSTREAM_TIMEOUT_MS,
        });
        bytes += Buffer.byteLength(JSON.stringify(result.tools));
        if (bytes > MAX_TOOL_LIST_BYTES)
          throw new UpstreamFailure('too_large', 'The MCP server lists more tools than the gateway keeps');
        tools.push(...(result.tools as UpstreamTool[]));
        cursor = result.nextCursor;
        if (!cursor) break;
      }
      return { tools };
    });
  }

  async callTool(
    server: Pick<McpServerView, 'url'>,
    token: string | undefined,
    tool: UpstreamTool,
    args: Record<string, unknown> | undefined,
    signal: AbortSignal | undefined,
  ): Promise<CallToolResult> {
    return this.exchange(server, token, signal, (client, combined) =>
      client.callTool(
        { name: tool.name, ...(args ? { arguments: args } : {}) },
        { signal: combined, timeout: this.env.MCP_UPSTREAM_TIMEOUT_MS, toolDefinition: tool },
      ),
    );
  }

  private async exchange<T>(
    server: Pick<McpServerView, 'url'>,
    token: string | undefined,
    outer: AbortSignal | undefined,
    work: (client: Client, signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const timeout = AbortSignal.timeout(this.env.MCP_UPSTREAM_TIMEOUT_MS);
    const signal = outer ? AbortSignal.any([outer, timeout]) : timeout;
    const transport = new StreamableHTTPClientTransport(new URL(server.url), {
      fetch: this.http.fetch,
      redirectPolicy: 'same-origin',
      ...(token ? { authProvider: { token: () => Promise.resolve(token) } } : {}),
    });
    const client = new Client({ name: 'context-gateway', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
    try {
      await client.connect(transport, { signal, timeout: this.env.MCP_UPSTREAM_TIMEOUT_MS });
      return await work(client, signal);
    } catch (error) {
      if (error instanceof UpstreamFailure) throw error;
      if (outer?.aborted) throw new UpstreamFailure('cancelled', 'The caller went away', { cause: error });
      throw classify(error, timeout.aborted);
    } finally {
      await client.close().catch(() => undefined);
    }
  }
}

/** Invalid request, method not found, invalid params, internal error. */
const PASSED_ON_CODES = new Set([-32600, -32601, -32602, -32603]);

function classify(error: unknown, timedOut: boolean): UpstreamFailure {
  const chain: unknown[] = [];
  for (let e: unknown = error; e && chain.length < 8; e = (e as { cause?: unknown }).cause) chain.push(e);
  if (chain.some((e) => e instanceof UpstreamTooLargeError))
    return new UpstreamFailure('too_large', 'The MCP server answered with more than the gateway accepts', {
      cause: error,
    });
  if (timedOut || chain.some((e) => (e as { name?: string }).name === 'TimeoutError'))
    return new UpstreamFailure('timeout', 'The MCP server did not answer in time', { cause: error });
  // The server answered with a standard JSON-RPC error of its own (unknown tool, invalid
  // arguments): passed on. Others (elicitation, server-defined codes) could pose as the
  // gateway's own and are not.
  if (error instanceof ProtocolError && PASSED_ON_CODES.has(error.code))
    return new UpstreamFailure('protocol', error.message.slice(0, 500), { cause: error, rpcCode: error.code });
  const text = chain.map((e) => String((e as { message?: unknown }).message ?? e)).join(' ');
  if (/\b401\b|unauthori[sz]ed/i.test(text))
    return new UpstreamFailure('unauthorized', 'The MCP server refused the credential', { cause: error });
  if (/ECONNREFUSED|ENOTFOUND|EADDRREFUSED|fetch failed|EAI_AGAIN|ECONNRESET/i.test(text))
    return new UpstreamFailure('unreachable', 'The MCP server could not be reached', { cause: error });
  return new UpstreamFailure('protocol', 'The MCP server failed the request', { cause: error });
}
