import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';

import { runDetached } from '@context-gateway/observability';
import { SERVICE_ENV } from '@context-gateway/service-kit';
import {
  type CallToolResult,
  Client,
  LOG_LEVEL_META_KEY,
  type Progress,
  ProtocolError,
  StreamableHTTPClientTransport,
  type SubscriptionFilter,
} from '@modelcontextprotocol/client';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';

import type { Env } from '../env.js';
import type { LogRelay } from './mcp-logging.js';
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

/** The lists whose changes a server announces (`notifications/<kind>/list_changed`). */
export type ListKind = 'tools' | 'resources' | 'prompts';
const LIST_KINDS: readonly ListKind[] = ['tools', 'resources', 'prompts'];
/** Where a 2026-07-28 listen filter asks for each list's changes. */
const LIST_FILTER = {
  tools: 'toolsListChanged',
  resources: 'resourcesListChanged',
  prompts: 'promptsListChanged',
} as const satisfies Record<ListKind, keyof SubscriptionFilter>;

/** A standing stream of one server's notifications (its list changes, resource updates). */
export interface UpstreamListener {
  /**
   * Settles when the stream ended, for whatever reason (the watcher then opens another):
   * `unsupported` when the server refused the 2025-11-25 GET stream with 405.
   */
  ended: Promise<'ended' | 'unsupported'>;
  close(): Promise<void>;
}

/**
 * Whose exchange with an upstream it is. A pooled client (its 2025-11-25 `Mcp-Session-Id`,
 * its negotiated state, whatever the server keeps per session) serves one org's registration
 * of the server, one person and one credential, never more: two orgs that registered the same
 * URL (even without a credential, `auth: none`) or two people never share an upstream session.
 */
export interface UpstreamCaller {
  orgId: string;
  /** The person the exchange is for; undefined for a read nobody asked for (at registration). */
  userId: string | undefined;
  /** The person's credential for the server; undefined (or empty) for a server without one. */
  token: string | undefined;
}

/** A connected client unused for this long is closed. */
const IDLE_CLIENT_MS = 60_000;
/** Connected clients one gateway keeps (one per org registration, person and credential). */
const MAX_CLIENTS = 2_000;

interface Pooled {
  client: Promise<Client>;
  lastUsed: number;
  /** Exchanges using it now: a client in use is never swept or evicted. */
  inFlight: number;
  /** 2025-11-25 servers with `logging`: the session's level, set to `debug` once a call wants messages. */
  logLevelSet?: Promise<void>;
  /**
   * Why it was closed under calls still using it (a refused credential, a broken transport):
   * what those calls fail with, rather than the bare "connection closed" the close causes.
   */
  broken?: UpstreamFailure;
}

/**
 * What an exchange adds to its request's params: on 2026-07-28 the log level the agent takes
 * (`_meta` `io.modelcontextprotocol/logLevel`), so the server sends messages at all.
 */
export interface RequestExtras {
  _meta?: Record<string, unknown>;
}

/**
 * The gateway as an MCP client of an org's remote servers, the person's source token as the
 * bearer (the caller's own token never leaves the gateway), either protocol revision
 * (`server/discover` first, `initialize` when the server is older). A connected client is
 * kept per org, integration, URL, person and credential (the credential by its hash: see
 * UpstreamCaller) and reused while in use, so a call is one upstream exchange, not a handshake
 * and an exchange; it is dropped after IDLE_CLIENT_MS unused or when its connection fails.
 */
@Injectable()
export class McpUpstream implements OnApplicationShutdown {
  private readonly http: { fetch: FetchLike; close: () => Promise<void> };
  /** For listeners' streams: the whole stream is the exchange, so its time limit is the stream's lifetime. */
  private readonly streaming: { fetch: FetchLike; close: () => Promise<void> };
  private readonly pool = new Map<string, Pooled>();
  private readonly sweeper: NodeJS.Timeout;
  /**
   * The log relay of the exchange under way. A pooled client serves concurrent calls, and the
   * SDK hands every `notifications/message` to one handler without saying which request it
   * came with; but it reads each request's response stream in that request's own async
   * context, so the message finds the relay of the call whose stream carried it.
   */
  private readonly logScope = new AsyncLocalStorage<LogRelay | undefined>();

  constructor(@Inject(SERVICE_ENV) private readonly env: Env) {
    this.http = upstreamFetch({
      policy: { allowHttp: env.MCP_ALLOW_INSECURE_UPSTREAMS, allowPrivateNetworks: env.MCP_ALLOW_PRIVATE_UPSTREAMS },
      timeoutMs: env.MCP_UPSTREAM_TIMEOUT_MS,
      maxBytes: env.MCP_MAX_RESULT_BYTES,
    });
    this.streaming = upstreamFetch({
      policy: { allowHttp: env.MCP_ALLOW_INSECURE_UPSTREAMS, allowPrivateNetworks: env.MCP_ALLOW_PRIVATE_UPSTREAMS },
      timeoutMs: env.MCP_UPSTREAM_STREAM_MS,
      maxBytes: env.MCP_MAX_RESULT_BYTES,
    });
    this.sweeper = setInterval(() => this.sweep(performance.now() - IDLE_CLIENT_MS), IDLE_CLIENT_MS / 2);
    this.sweeper.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.sweeper);
    for (const [key, pooled] of this.pool) this.drop(key, pooled);
    await this.http.close();
    await this.streaming.close();
  }

  /**
   * Every tool the server lists (all pages), and how long the list may be used if it says
   * (`ttlMs`, 2026-07-28: the shortest of its pages; absent on 2025-11-25).
   */
  async listTools(
    server: UpstreamServer,
    as: UpstreamCaller,
  ): Promise<{ tools: UpstreamTool[]; ttlMs: number | undefined }> {
    return this.exchange(server, as, undefined, async (client, signal) => {
      const tools: UpstreamTool[] = [];
      let cursor: string | undefined;
      let bytes = 0;
      let ttlMs: number | undefined;
      for (let page = 0; page < MAX_TOOL_PAGES; page++) {
        const result = await client.listTools(cursor ? { cursor } : {}, {
          // Always the server's answer now, never the SDK's cached one (a re-read must see changes).
          cacheMode: 'bypass',
          ...(signal ? { signal } : {}),
          timeout: this.env.MCP_UPSTREAM_TIMEOUT_MS,
        });
        bytes += Buffer.byteLength(JSON.stringify(result.tools));
        if (bytes > MAX_TOOL_LIST_BYTES)
          throw new UpstreamFailure('too_large', 'The MCP server lists more tools than the gateway keeps');
        tools.push(...(result.tools as UpstreamTool[]));
        const pageTtl = (result as { ttlMs?: unknown }).ttlMs;
        // A negative ttlMs counts as 0 (the spec); a non-number as none.
        if (typeof pageTtl === 'number' && Number.isFinite(pageTtl))
          ttlMs = Math.min(ttlMs ?? Number.POSITIVE_INFINITY, Math.max(0, pageTtl));
        cursor = result.nextCursor;
        if (!cursor) break;
      }
      return { tools, ttlMs };
    });
  }

  /**
   * Opens a standing stream of the server's list changes with `token`, each told to
   * `onChanged` by kind: on 2026-07-28 `subscriptions/listen` asking for each list the server
   * says it announces (`toolsListChanged`, `resourcesListChanged`, `promptsListChanged` where
   * its capabilities have `listChanged`), on 2025-11-25 the standalone GET stream the SDK
   * opens after `initialize` (the notifications come on it unasked). Undefined when the server
   * announces none of them (or a listen honours none).
   */
  listen(
    server: Pick<McpServerView, 'url'>,
    token: string | undefined,
    onChanged: (kind: ListKind) => void,
  ): Promise<UpstreamListener | undefined> {
    return this.standing(server, token, {
      offered: (capabilities) => LIST_KINDS.some((kind) => capabilities?.[kind]?.listChanged === true),
      filter: (capabilities) => {
        const filter: SubscriptionFilter = {};
        for (const kind of LIST_KINDS) if (capabilities?.[kind]?.listChanged === true) filter[LIST_FILTER[kind]] = true;
        return filter;
      },
      honored: (filter) => LIST_KINDS.some((kind) => filter[LIST_FILTER[kind]] === true),
      wire: (client) => {
        for (const kind of LIST_KINDS)
          client.setNotificationHandler(`notifications/${kind}/list_changed`, () => onChanged(kind));
      },
    });
  }

  /**
   * Opens a standing stream of `notifications/resources/updated` for `uris` (the server's own)
   * with `token`: on 2026-07-28 `subscriptions/listen` with `resourceSubscriptions`; on
   * 2025-11-25 `resources/subscribe` for each URI on the session whose GET stream the SDK
   * opens (a URI the server refuses is left out). Undefined when the server offers no
   * resource subscriptions (no `resources.subscribe`, or a listen that honours none).
   */
  watchResources(
    server: Pick<McpServerView, 'url'>,
    token: string | undefined,
    uris: readonly string[],
    onUpdated: (uri: string) => void,
  ): Promise<UpstreamListener | undefined> {
    return this.standing(server, token, {
      offered: (capabilities) => capabilities?.resources?.subscribe === true,
      filter: () => ({ resourceSubscriptions: [...uris] }),
      honored: (filter) => (filter.resourceSubscriptions?.length ?? 0) > 0,
      legacy: async (client) => {
        for (const uri of uris)
          await client.subscribeResource({ uri }, { timeout: this.env.MCP_UPSTREAM_TIMEOUT_MS }).catch(() => undefined);
      },
      wire: (client) =>
        client.setNotificationHandler('notifications/resources/updated', (n) => onUpdated(n.params.uri)),
    });
  }

  /**
   * A standing stream of the server's notifications: its own client (never pooled: the pool
   * refuses GET) whose fetch bounds the stream's lifetime by MCP_UPSTREAM_STREAM_MS. On
   * 2026-07-28 `subscriptions/listen` with `filter`; on 2025-11-25 the GET stream the SDK opens
   * after `initialize`, and `legacy` asks for the rest on that session. A GET stream counts as
   * open once asked for: servers need not send its headers before its first event, so a
   * refusal of it (405) shows as `ended` = `unsupported`.
   */
  private async standing(
    server: Pick<McpServerView, 'url'>,
    token: string | undefined,
    what: {
      offered: (capabilities: ReturnType<Client['getServerCapabilities']>) => boolean;
      /** What to listen for, given what the server offers. */
      filter: (capabilities: ReturnType<Client['getServerCapabilities']>) => SubscriptionFilter;
      honored: (filter: SubscriptionFilter) => boolean;
      legacy?: (client: Client) => Promise<void>;
      wire: (client: Client) => void;
    },
  ): Promise<UpstreamListener | undefined> {
    let end!: (how: 'ended' | 'unsupported') => void;
    const endedPromise = new Promise<'ended' | 'unsupported'>((resolve) => (end = resolve));
    const ended = () => end('ended');
    const transport = new StreamableHTTPClientTransport(new URL(server.url), {
      fetch: async (input, init) => {
        if (init?.method !== 'GET') return this.streaming.fetch(input, init);
        const res = await this.streaming.fetch(input, init).catch((error: unknown) => {
          ended();
          throw error;
        });
        if (res.ok && res.body) return new Response(observed(res.body, ended), res);
        // Only 405 says the server offers no stream; another refusal (401, 5xx) is tried again later.
        end(res.status === 405 ? 'unsupported' : 'ended');
        return res;
      },
      redirectPolicy: 'same-origin',
      // The watcher reconnects (with its backoff and a fresh token), not the SDK.
      reconnectionOptions: {
        maxRetries: 0,
        initialReconnectionDelay: 1_000,
        maxReconnectionDelay: 1_000,
        reconnectionDelayGrowFactor: 1,
      },
      ...(token ? { authProvider: { token: () => Promise.resolve(token) } } : {}),
    });
    const client = new Client({ name: 'context-gateway', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
    client.onerror = () => undefined;
    client.onclose = () => ended();
    what.wire(client);
    const close = async () => {
      ended();
      // A 2025-11-25 server kept a session for the stream: end it there too (none is kept otherwise).
      if (transport.sessionId !== undefined) await transport.terminateSession().catch(() => undefined);
      await client.close().catch(() => undefined);
    };
    try {
      await client.connect(transport, {
        signal: AbortSignal.timeout(this.env.MCP_UPSTREAM_TIMEOUT_MS),
        timeout: this.env.MCP_UPSTREAM_TIMEOUT_MS,
      });
      if (!what.offered(client.getServerCapabilities())) {
        await close();
        return undefined;
      }
      // 2025-11-25: the SDK asks for the GET stream itself once initialized.
      if ((client.getNegotiatedProtocolVersion() ?? '') >= '2026-07-28') {
        const subscription = await client.listen(what.filter(client.getServerCapabilities()), {
          timeout: this.env.MCP_UPSTREAM_TIMEOUT_MS,
        });
        if (!what.honored(subscription.honoredFilter)) {
          await close();
          return undefined;
        }
        void subscription.closed.then(() => ended());
      } else await what.legacy?.(client);
    } catch (error) {
      await close();
      throw error instanceof UpstreamFailure ? error : classify(error);
    }
    return { ended: endedPromise, close };
  }

  async callTool(
    server: UpstreamServer,
    as: UpstreamCaller,
    tool: UpstreamTool,
    args: Record<string, unknown> | undefined,
    signal: AbortSignal | undefined,
    onProgress?: (progress: Progress) => void,
    logs?: LogRelay,
  ): Promise<CallToolResult> {
    return this.exchange(
      server,
      as,
      signal,
      (client, combined, extras) =>
        client.callTool(
          { name: tool.name, ...(args ? { arguments: args } : {}), ...extras },
          {
            ...(combined ? { signal: combined } : {}),
            // Progress does not extend the time limit: MCP_UPSTREAM_TIMEOUT_MS bounds the whole call.
            ...(onProgress ? { onprogress: onProgress } : {}),
            timeout: this.env.MCP_UPSTREAM_TIMEOUT_MS,
            toolDefinition: tool,
          },
        ),
      logs,
    );
  }

  /**
   * Any other exchange with the server (resources, prompts), with the same pooling, limits and
   * error mapping; `work` spreads `extras` into its request's params. With `logs`, the
   * server's log messages sent with the request reach it.
   */
  use<T>(
    server: UpstreamServer,
    as: UpstreamCaller,
    signal: AbortSignal | undefined,
    work: (client: Client, signal: AbortSignal | undefined, extras: RequestExtras) => Promise<T>,
    logs?: LogRelay,
  ): Promise<T> {
    return this.exchange(server, as, signal, work, logs);
  }

  private async exchange<T>(
    server: UpstreamServer,
    as: UpstreamCaller,
    outer: AbortSignal | undefined,
    work: (client: Client, signal: AbortSignal | undefined, extras: RequestExtras) => Promise<T>,
    logs?: LogRelay,
  ): Promise<T> {
    const key = poolKey(server, as);
    const pooled = this.pooled(key, server.url, as.token);
    pooled.inFlight++;
    try {
      const client = await pooled.client;
      const extras = logs ? await this.askForLogs(pooled, client, logs) : {};
      // The caller's signal as it is: the time limit is the SDK's per request, and the fetch's.
      return await this.logScope.run(logs, () => work(client, outer, extras));
    } catch (error) {
      const failure =
        error instanceof UpstreamFailure
          ? error
          : outer?.aborted
            ? new UpstreamFailure('cancelled', 'The caller went away', { cause: error })
            : closedUnder(pooled, classify(error));
      // The server's own answer, a slow call or a cancelled one leave the connection as it
      // was (other calls may be using it); a refused credential or a broken transport do not.
      if (failure.kind === 'unreachable' || failure.kind === 'unauthorized' || failure.kind === 'protocol')
        if (failure.rpcCode === undefined) this.drop(key, pooled, failure);
      throw failure;
    } finally {
      pooled.inFlight--;
      pooled.lastUsed = performance.now();
    }
  }

  /**
   * Has the server send the log messages of the next request, when it offers `logging`: on
   * 2026-07-28 the agent's level goes in the request's `_meta`; on 2025-11-25 the pooled
   * session's level is set to `debug` once (calls of several agents share the session, so
   * the gateway takes everything and each relay filters by its agent's level). A server
   * that refuses the level still answers the call.
   */
  private async askForLogs(pooled: Pooled, client: Client, logs: LogRelay): Promise<RequestExtras> {
    if (!client.getServerCapabilities()?.logging) return {};
    if ((client.getNegotiatedProtocolVersion() ?? '') >= '2026-07-28')
      return { _meta: { [LOG_LEVEL_META_KEY]: logs.level } };
    pooled.logLevelSet ??= client
      .setLoggingLevel('debug', { timeout: this.env.MCP_UPSTREAM_TIMEOUT_MS })
      .then(() => undefined)
      .catch(() => undefined);
    await pooled.logLevelSet;
    return {};
  }

  private pooled(key: string, url: string, token: string | undefined): Pooled {
    const found = this.pool.get(key);
    if (found) {
      // Most recently used last: the first entry is the one to evict.
      this.pool.delete(key);
      this.pool.set(key, found);
      return found;
    }
    // Kept for later requests of the same tenant: its connection is not the first request's.
    const entry = runDetached(() => this.connectClient(url, token));
    // A failed connect is not kept (the caller sees the failure; the next call tries afresh).
    entry.client.catch(() => this.drop(key, entry));
    this.pool.set(key, entry);
    if (this.pool.size > MAX_CLIENTS) {
      for (const [oldKey, old] of this.pool) {
        if (old.inFlight > 0 || old === entry) continue;
        this.drop(oldKey, old);
        break;
      }
    }
    return entry;
  }

  /** A new client toward `url`, connecting (with its own time limit). */
  private connectClient(url: string, token: string | undefined): Pooled {
    const transport = new StreamableHTTPClientTransport(new URL(url), {
      // No standalone server-to-client stream (GET): the gateway answers statelessly, and a
      // held stream per pooled client would take a connection each for nothing.
      fetch: (input, init) =>
        init?.method === 'GET' ? Promise.resolve(new Response(null, { status: 405 })) : this.http.fetch(input, init),
      redirectPolicy: 'same-origin',
      ...(token ? { authProvider: { token: () => Promise.resolve(token) } } : {}),
    });
    const client = new Client({ name: 'context-gateway', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
    client.setNotificationHandler('notifications/message', (message) =>
      this.logScope.getStore()?.deliver(message.params),
    );
    return {
      client: client
        // Its own time limit, not the first caller's signal: others may wait on the same connect.
        .connect(transport, {
          signal: AbortSignal.timeout(this.env.MCP_UPSTREAM_TIMEOUT_MS),
          timeout: this.env.MCP_UPSTREAM_TIMEOUT_MS,
        })
        .then(() => client),
      lastUsed: performance.now(),
      inFlight: 0,
    };
  }

  /** Drops `entry` if it is still the one pooled under `key` (a replacement is left alone). */
  private drop(key: string, entry: Pooled, broken?: UpstreamFailure): void {
    if (this.pool.get(key) !== entry) return;
    this.pool.delete(key);
    entry.broken = broken;
    void entry.client.then((c) => c.close()).catch(() => undefined);
  }

  private sweep(idleBefore: number): void {
    for (const [key, pooled] of this.pool)
      if (pooled.inFlight === 0 && pooled.lastUsed < idleBefore) this.drop(key, pooled);
  }
}

/** The server as the pool tells registrations apart: its org's integration key and its URL. */
type UpstreamServer = Pick<McpServerView, 'integration' | 'url'>;

/** One pooled client per org, integration, URL, person and credential (hashed: no token is kept as a key). */
function poolKey(server: UpstreamServer, as: UpstreamCaller): string {
  const credential = as.token ? createHash('sha256').update(as.token).digest('base64url') : '';
  return JSON.stringify([as.orgId, server.integration, server.url, as.userId ?? '', credential]);
}

/** `body` as it is, calling `ended` once it ends, fails or is cancelled. */
function observed(body: ReadableStream<Uint8Array>, ended: () => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          ended();
          controller.close();
        } else controller.enqueue(value);
      } catch (error) {
        ended();
        controller.error(error);
      }
    },
    cancel(reason) {
      ended();
      return reader.cancel(reason);
    },
  });
}

function messageOf(e: unknown): string {
  const message = (e as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : '';
}

/** Invalid request, method not found, invalid params, internal error, resource not found. */
const PASSED_ON_CODES = new Set([-32600, -32601, -32602, -32603, -32002]);

/**
 * A call that failed without an answer of the server's own, on a connection another call
 * closed meanwhile: it failed for that call's reason (the server refused the credential they
 * share, or the transport broke), not for the close it saw.
 */
function closedUnder(pooled: Pooled, own: UpstreamFailure): UpstreamFailure {
  if (!pooled.broken || own.rpcCode !== undefined || own.kind === 'timeout' || own.kind === 'too_large') return own;
  return new UpstreamFailure(pooled.broken.kind, pooled.broken.message, { cause: own });
}

function classify(error: unknown): UpstreamFailure {
  const chain: unknown[] = [];
  for (let e: unknown = error; e && chain.length < 8; e = (e as { cause?: unknown }).cause) chain.push(e);
  if (chain.some((e) => e instanceof UpstreamTooLargeError))
    return new UpstreamFailure('too_large', 'The MCP server answered with more than the gateway accepts', {
      cause: error,
    });
  if (chain.some((e) => (e as { name?: string }).name === 'TimeoutError' || /timed? ?out/i.test(messageOf(e))))
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
