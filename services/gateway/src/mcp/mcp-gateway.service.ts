import { createHash, randomUUID } from 'node:crypto';

import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { runDetached } from '@context-gateway/observability';
import type { Decision } from '@context-gateway/policy-engine';
import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import type { Client } from '@modelcontextprotocol/client';
import {
  type CompleteRequest,
  createMcpHandler,
  inputRequired,
  LOG_LEVEL_META_KEY,
  type LoggingLevel,
  type McpHandlerRequestOptions,
  type McpHttpHandler,
  type McpRequestContext,
  type Progress,
  type ProgressToken,
  ProtocolError,
  Server,
  SERVER_INFO_META_KEY,
  type ServerCapabilities,
  type ServerEvent,
  type ServerNotification,
  SUBSCRIPTION_ID_META_KEY,
  UrlElicitationRequiredError,
  WebStandardStreamableHTTPServerTransport,
} from '@modelcontextprotocol/server';
import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';

import { escapeInvisible } from '../approvals/approval-display.js';
import { ApprovalsService, type HeldCall } from '../approvals/approvals.service.js';
import { AuditRecorder } from '../audit/audit-recorder.js';
import { outcomeOf } from '../audit/audit-route.interceptor.js';
import { auditSubject } from '../audit/audit-subject.js';
import type { ApplicationCaller } from '../auth/auth.types.js';
import { CredentialsService } from '../credentials/credentials.service.js';
import type { Env } from '../env.js';
import { auditPolicyOf, deniedError, type McpPolicyView, PolicyDecider } from '../policy/policy-decider.js';
import { awaitsConsent, resourceOf, tokenCovers } from './mcp-decisions.js';
import { McpListWatcher } from './mcp-list-watch.js';
import { type LogRelay, logRelay, McpLogLevels } from './mcp-logging.js';
import { McpResourceSubscriptions, type ResourceSubscription } from './mcp-resource-subscriptions.js';
import {
  gatewayToolName,
  type McpServerView,
  splitGatewayToolName,
  tokenIsFor,
  unwrapUri,
  type UpstreamTool,
  wrapUri,
} from './mcp-server-view.js';
import { boundedStream } from './mcp-stream-lifetime.js';
import { McpSubscribers, type StreamCaller, type Visible } from './mcp-subscribers.js';
import { McpToolCatalog, type ToolRead, UNKNOWN_TOOL_REREAD_MS } from './mcp-tool-catalog.js';
import { McpUpstream, type UpstreamCaller, UpstreamFailure } from './mcp-upstream.js';
import { type McpSelection, selectionKey, selectionOf } from './mcp-virtual-server.js';

/** JSON-RPC error codes of gateway mode (server-defined range, docs/gateway-mode.md). */
const MCP_ERRORS = {
  /** The three-layer policy refused the call; `data.decidedBy` names the layer. */
  policyDenied: -32003,
  /** The access token lacks the scope the tool needs. */
  insufficientScope: -32004,
  /** The upstream server failed, timed out or answered too much. */
  upstream: -32010,
  /** The audit trail could not store the call, so it did not run. */
  auditUnavailable: -32011,
  /** Policy could not be brought up to date in time (fails closed). */
  unavailable: -32012,
  /** The person declined this exact call on the approval page. */
  approvalDeclined: -32013,
  /** The approval store could not hold or settle the call (fails closed: nothing ran). */
  approvalUnavailable: -32014,
  /** The person holds MCP_MAX_RESOURCE_SUBSCRIPTIONS already; `data.code` is `rate_limited`. */
  tooManySubscriptions: -32015,
} as const;

/** A person's source token for one integration, as gateway mode keeps it between calls. */
interface Credential {
  key: string;
  /** The person's connection the token belongs to (named in the call's audited outcome). */
  connectionId: string;
  accessToken: string;
  /** Which stored credential the token is: sent back when the upstream refuses it. */
  credentialVersion: number;
  /** What the token was issued for (an MCP server with its own OAuth: the server's resource). */
  resource: string;
  /** The org's policy revision it was checked at (-1: not kept). */
  revision: bigint;
  /** Epoch ms: after it, the broker is asked again. */
  usableUntil: number;
}

/** How long a credential is kept at most (the same policy revision provided). */
const CREDENTIAL_KEEP_MS = 60_000;
/** A token this close to expiry is fetched again (the broker refreshes it first). */
const TOKEN_MARGIN_MS = 60_000;
/** What the broker answers when the person has no usable connection for an integration. */
const NOT_CONNECTED = new Set(['connection_required', 'connection_needs_reauth', 'connection_not_found']);
/** People × integrations one gateway keeps credentials for. */
const MAX_CREDENTIALS = 20_000;

/**
 * What /mcp and each /mcp/v/<name> offer: tool list changes are told truthfully (to
 * subscriptions/listen streams on 2026-07-28, GET streams on 2025-11-25) — at a virtual
 * server, changes of its selection only — and so are updates of resources subscribed at /mcp
 * (the same streams). Resource and prompt list changes are passed on from the upstreams that
 * announce them, to the streams shown that upstream's lists (at a virtual server, the
 * integrations it selects whole; docs/gateway-mode.md), and told when the gateway's side
 * changes which servers' lists a stream is shown (rules, grants, connections, selections). `logging`: the upstreams' log
 * messages of a call, read or get reach the agent on that request's stream.
 */
const CAPABILITIES: ServerCapabilities = {
  tools: { listChanged: true },
  resources: { subscribe: true, listChanged: true },
  prompts: { listChanged: true },
  completions: {},
  logging: {},
};
/** A virtual server's: its list changes, but no resource subscriptions (a listen's are dropped there). */
const VIRTUAL_CAPABILITIES: ServerCapabilities = { ...CAPABILITIES, resources: { listChanged: true } };
const SERVER_INFO = { name: 'context-gateway', version: '1.0.0' };

/** What the HTTP edge hands to the handler for one /mcp request. */
export interface GatewayAuth {
  caller: ApplicationCaller & { onBehalfOf: string };
  request: FastifyRequest;
  /** The org's named virtual server the request came to (`/mcp/v/<name>`); undefined at /mcp. */
  virtualServer?: string;
  /**
   * The policy view the edge already fetched for this request (at /mcp/v/<name>, to know the
   * name): the handler's first look uses it rather than asking again.
   */
  view?: McpPolicyView;
}

/**
 * Gateway mode: the MCP server agents talk to at /mcp. Each request gets a fresh low-level
 * SDK server (stateless serving of 2026-07-28 and 2025-11-25 alike) whose tools are the
 * tools of the org's remote MCP servers that the three-layer policy lets this application
 * use for this person, named `<integration>.<tool>`. A call is decided (capability and,
 * where the registration names one, the resource in its arguments), its intent audited,
 * sent upstream with the person's own credential for that integration, and its outcome
 * audited. A person without a connection gets URL-mode elicitation pointing at a connect
 * link bound to them; no credential ever passes through the MCP client.
 */
@Injectable()
export class McpGatewayService implements OnModuleDestroy {
  private readonly handler: McpHttpHandler;
  private readonly credentialCache = new Map<string, Credential>();
  /** 2025-11-25 GET streams open now (closed at shutdown). */
  private readonly legacyStreams = new Set<Server>();

  constructor(
    private readonly decider: PolicyDecider,
    private readonly credentials: CredentialsService,
    private readonly upstream: McpUpstream,
    private readonly catalog: McpToolCatalog,
    private readonly recorder: AuditRecorder,
    private readonly approvals: ApprovalsService,
    private readonly subscribers: McpSubscribers,
    private readonly watcher: McpListWatcher,
    private readonly logLevels: McpLogLevels,
    private readonly resourceSubscriptions: McpResourceSubscriptions,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(SERVICE_ENV) private readonly env: Env,
    private readonly clock: Clock,
  ) {
    this.handler = createMcpHandler((ctx) => this.serverFor(ctx), {
      onerror: (error) => this.logger.debug({ err: error.message }, 'mcp request rejected'),
      bus: subscribers.bus,
      maxSubscriptions: env.MCP_MAX_STREAMS,
    });
    // Who is told what: a stream's caller is compared on every change that may concern them —
    // any CONTROL event of their org (rules, grants, the tool catalog) and a change of their
    // own list upstream — and told only when what they may see moved.
    subscribers.configure((caller) => this.visibleDigest(caller));
    watcher.wantedBy((orgId, userId) => subscribers.listening(orgId, userId));
    // Resource and prompt lists are not kept: each of the person's streams shown that server's
    // lists is told (as resources/list and prompts/list would show them).
    // Awaited by the watcher: one fan-out per server and person at a time. In no request's context.
    watcher.onChange((change) => {
      if (change.kind === 'tools') return subscribers.check(change.orgId, change.userId);
      const { kind } = change;
      return runDetached(() =>
        subscribers.listChanged(change.orgId, change.userId, kind, (caller) => this.showsWhole(caller, change)),
      );
    });
    decider.onOrgChange((orgId) => {
      subscribers.check(orgId);
      watcher.recheck(orgId);
      resourceSubscriptions.recheck(orgId);
    });
    resourceSubscriptions.configure({
      mayRead: (subscription) => this.mayStillRead(subscription),
      tellListeners: (caller, uri) => subscribers.tell(caller, { kind: 'resource_updated', uri }),
    });
  }

  async onModuleDestroy(): Promise<void> {
    await this.handler.close();
    await Promise.all([...this.legacyStreams].map((s) => s.close().catch(() => undefined)));
  }

  /**
   * Serves one request at /mcp or /mcp/v/<name>. A stream (2026-07-28 `subscriptions/listen`,
   * 2025-11-25 GET) is refused past MCP_MAX_STREAMS_PER_PERSON for this application and person,
   * MCP_MAX_STREAMS_PER_ORG for their org (one org cannot take every stream of a shared
   * gateway) or MCP_MAX_STREAMS in all (at either endpoint), and lives at most MCP_UPSTREAM_STREAM_MS
   * (the client opens another: its token is checked again then). A virtual server's stream
   * follows that virtual server's list, and ends when it is deleted.
   */
  async fetch(person: GatewayAuth['caller'], request: Request, options: McpHandlerRequestOptions): Promise<Response> {
    const message = options.parsedBody as { method?: unknown; id?: unknown } | undefined;
    const listen = message?.method === 'subscriptions/listen';
    if (request.method !== 'GET' && !listen)
      return this.subscribers.within(person, () => this.handler.fetch(request, options));
    const caller = streamCaller(person, options.authInfo?.extra?.gateway as GatewayAuth | undefined);
    const open = this.subscribers.open(caller);
    if (
      open.person >= this.env.MCP_MAX_STREAMS_PER_PERSON ||
      open.org >= this.env.MCP_MAX_STREAMS_PER_ORG ||
      open.total >= this.env.MCP_MAX_STREAMS
    )
      throw new AppError('rate_limited', 'Too many open MCP streams; close one before opening another');
    if (request.method === 'GET') return this.legacyStream(caller, request);
    const { parsedBody, release } = await this.listenSubscriptions(options);
    // Ended by the gateway when the stream's virtual server is deleted: told, then complete.
    const end: { now: (() => void) | undefined; early: boolean } = { now: undefined, early: false };
    let response: Response;
    try {
      response = await this.subscribers.within(
        caller,
        () => this.handler.fetch(request, { ...options, parsedBody }),
        () => (end.now ? end.now() : (end.early = true)),
      );
    } catch (error) {
      release();
      throw error;
    }
    // A refused listen is answered in JSON; an accepted one ends gracefully when its lifetime is up.
    if (!response.body || !response.headers.get('content-type')?.startsWith('text/event-stream')) {
      release();
      return response;
    }
    const id = message?.id;
    const frame = (payload: unknown) =>
      new TextEncoder().encode(`event: message\ndata: ${JSON.stringify(payload)}\n\n`);
    const complete = frame({
      jsonrpc: '2.0',
      id,
      result: {
        resultType: 'complete',
        _meta: { [SUBSCRIPTION_ID_META_KEY]: id, [SERVER_INFO_META_KEY]: SERVER_INFO },
      },
    });
    const told = frame({
      jsonrpc: '2.0',
      method: 'notifications/tools/list_changed',
      params: { _meta: { [SUBSCRIPTION_ID_META_KEY]: id } },
    });
    const bounded = boundedStream(response.body, this.env.MCP_UPSTREAM_STREAM_MS, release, complete);
    end.now = () => bounded.end(told);
    if (end.early) end.now();
    return new Response(bounded.body, response);
  }

  /**
   * A 2025-11-25 standalone stream (GET). The SDK's stateless serving answers GET with 405;
   * the gateway keeps no sessions (every POST is answered on its own, by any replica), so the
   * stream belongs to the caller — this application for this person — and tells them
   * `notifications/tools/list_changed` when their list changes. Framing, Accept and
   * protocol-version checks are the SDK's stateless transport's.
   */
  private async legacyStream(caller: StreamCaller, request: Request): Promise<Response> {
    const server = new Server(SERVER_INFO, {
      capabilities: caller.virtualServer === undefined ? CAPABILITIES : VIRTUAL_CAPABILITIES,
    });
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    await server.connect(transport);
    const response = await transport.handleRequest(request);
    if (!response.body || !response.ok) {
      await server.close();
      return response;
    }
    this.legacyStreams.add(server);
    // The caller's resources/subscribe at /mcp: their updates come on this stream (not at a
    // virtual server), and only where this stream's own token reaches the integration — the
    // subscription may have come with another token of the same application and person.
    const removeSink = caller.virtualServer
      ? () => undefined
      : this.resourceSubscriptions.legacyStream(caller, (uri) => {
          const integration = unwrapUri(uri)?.integration;
          if (integration === undefined || !tokenCovers(caller, integration, `${integration}:tools`)) return;
          void server.sendResourceUpdated({ uri }).catch(() => undefined);
        });
    const close = () => {
      remove();
      removeSink();
      this.legacyStreams.delete(server);
      void server.close().catch(() => undefined);
    };
    const remove = this.subscribers.add(
      caller,
      (event) => void legacyNotice(server, event)?.catch(() => undefined),
      // Its virtual server was deleted: told, then the stream ends (closing the server drains it).
      () =>
        void server
          .sendToolListChanged()
          .catch(() => undefined)
          .finally(close),
    );
    // An SSE comment first: the headers go out now (the client knows the stream is open), not with the first event.
    const opening = new TextEncoder().encode(': stream open\n\n');
    const body = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({ start: (controller) => controller.enqueue(opening) }),
    );
    return new Response(boundedStream(body, this.env.MCP_UPSTREAM_STREAM_MS, close).body, response);
  }

  /**
   * What the caller may see now at the stream's endpoint, digested: the same list tools/list
   * there would answer (at a virtual server: its selection as it is now), from the lists kept
   * (no reads), and the servers resources/list and prompts/list would read there; undefined
   * when the virtual server is gone. Run when their stream opens and on
   * every change that may concern them, so it also keeps their lists followed upstream: each
   * server of the org's current view the endpoint offers, with their own credential.
   */
  private async visibleDigest(caller: StreamCaller): Promise<Visible | undefined> {
    const view = await this.decider.mcpView(caller);
    const name = caller.virtualServer?.name;
    if (name !== undefined && !view.virtualServers.has(name)) return undefined;
    const selection = selectionOf(view.virtualServers, name);
    const selected = view.servers.filter((server) => selection.offersServer(server.integration));
    this.watcher.follow(
      caller.orgId,
      caller.onBehalfOf,
      view.servers,
      (integration) =>
        this.tokenIfConnected(
          caller,
          integration,
          view.servers.find((s) => s.integration === integration),
        ),
      (integration) => selection.offersServer(integration),
    );
    // The person's own list only where this caller has a token for the server (as tools/list
    // reads it): another application's grant must not show here.
    // Only a known answer counts: a broker that did not answer fails the comparison (the
    // previous digest stays, the next change compares again), never "nobody is connected",
    // which would tell every stream of the org twice.
    const tokens = await Promise.all(
      selected.map((server) => this.tokenIfConnected(caller, server.integration, server, true)),
    );
    const offered = new Map(
      selected.map((server, i) => {
        const names = tokens[i] ? this.catalog.kept(caller.orgId, server.integration, caller.onBehalfOf) : undefined;
        return [server.integration, { names, catalogChanged: false }] as const;
      }),
    );
    const tools = this.visible(caller, view, offered, selection);
    // The servers whose resources and prompts resources/list and prompts/list would show here
    // (readable, as `readable` decides it, with the same credentials).
    const lists = selected
      .filter(
        (server, i) =>
          selection.offersWhole(server.integration) &&
          (server.auth === 'none' || tokens[i] !== undefined) &&
          this.listsShown(caller, view, server),
      )
      .map((server) => [server.integration, server.url]);
    return { tools: digestOf(tools), lists: digestOf(lists) };
  }

  private serverFor(ctx: McpRequestContext): Server {
    const auth = ctx.authInfo?.extra?.gateway as GatewayAuth | undefined;
    if (!auth) throw new Error('an unauthenticated request reached the MCP handler');
    const server = new Server(SERVER_INFO, {
      capabilities: auth.virtualServer === undefined ? CAPABILITIES : VIRTUAL_CAPABILITIES,
      instructions: instructionsFor(auth),
    });
    server.setRequestHandler('tools/list', async () => ({
      tools: await this.listTools(auth),
      cacheScope: 'private' as const,
    }));
    // 2025-11-25 (2026-07-28 has no such request: a level travels with each request).
    server.setRequestHandler('logging/setLevel', (request) => {
      this.logLevels.set(auth.caller, request.params.level);
      return {};
    });
    // The agent's level for this request: the request's own (2026-07-28), the caller's remembered one (2025-11-25).
    const logsOf = (mcpReq: LoggedRequest) => {
      const threshold =
        ctx.era === 'modern' ? mcpReq.envelope?.[LOG_LEVEL_META_KEY] : (this.logLevels.get(auth.caller) ?? 'debug');
      return (integration: string) => logRelay({ integration, threshold, notify: notifier(mcpReq) });
    };
    server.setRequestHandler('tools/call', (request, context) =>
      this.callTool(
        auth,
        ctx.era,
        request.params.name,
        request.params.arguments,
        context.mcpReq.signal,
        progressRelay(context.mcpReq),
        logsOf(context.mcpReq),
      ),
    );
    server.setRequestHandler('resources/list', () => this.listResources(auth));
    server.setRequestHandler('resources/templates/list', () => this.listResourceTemplates(auth));
    server.setRequestHandler('resources/read', (request, context) =>
      this.readResource(auth, ctx.era, request.params.uri, context.mcpReq.signal, logsOf(context.mcpReq)),
    );
    // 2025-11-25 only: 2026-07-28 has no resources/subscribe (subscriptions/listen replaced it).
    // The era check changes no answer — on 2026-07-28 the SDK itself answers it as an unknown
    // method (-32601), handler or not — it only says which revision these handlers serve.
    if (auth.virtualServer === undefined && ctx.era === 'legacy') {
      server.setRequestHandler('resources/subscribe', async (request) => {
        const subscription = await this.subscription(auth, request.params.uri, 'legacy');
        try {
          this.resourceSubscriptions.add([subscription]);
        } catch (error) {
          const appError = AppError.from(error);
          throw new ProtocolError(MCP_ERRORS.tooManySubscriptions, appError.message, { code: appError.code });
        }
        return {};
      });
      server.setRequestHandler('resources/unsubscribe', (request) => {
        this.resourceSubscriptions.unsubscribe(auth.caller, request.params.uri);
        return {};
      });
    }
    server.setRequestHandler('prompts/list', () => this.listPrompts(auth));
    server.setRequestHandler('completion/complete', (request, context) =>
      this.complete(auth, request.params, context.mcpReq.signal),
    );
    server.setRequestHandler('prompts/get', (request, context) =>
      this.getPrompt(
        auth,
        ctx.era,
        request.params.name,
        request.params.arguments,
        context.mcpReq.signal,
        logsOf(context.mcpReq),
      ),
    );
    return server;
  }

  /** The tools this application may use for this person (or could, once the person connects). */
  private async listTools(auth: GatewayAuth) {
    const { caller } = auth;
    let view = await this.policyView(auth);
    // A virtual server's selection: servers it offers nothing of are not even read.
    const selection = selectionOf(view.virtualServers, auth.virtualServer);
    const selected = view.servers.filter((server) => selection.offersServer(server.integration));
    // Each server's list as it offers it to this person (read with their credential, kept a
    // while); a person without a connection sees the org's catalog.
    const reads = await Promise.all(
      selected.map(async (server) => {
        const token = await this.tokenIfConnected(caller, server.integration, server);
        const read = token
          ? await this.catalog.forPerson(caller.orgId, server, caller.onBehalfOf, token)
          : { names: undefined, catalogChanged: false };
        return [server.integration, read] as const;
      }),
    );
    if (reads.some(([, read]) => read.catalogChanged)) view = await this.policyView(auth, true);
    return this.visible(caller, view, new Map(reads), selection);
  }

  /**
   * The tools of `view` this caller may see: in the endpoint's selection (everything at /mcp),
   * in the person's own list (when read), their token's scope, and allowed.
   */
  private visible(
    caller: GatewayAuth['caller'],
    view: McpPolicyView,
    offered: ReadonlyMap<string, ToolRead>,
    selection: McpSelection = selectionOf(view.virtualServers, undefined),
  ) {
    const tools: UpstreamTool[] = [];
    for (const server of view.servers) {
      const names = offered.get(server.integration)?.names;
      for (const tool of server.tools.values()) {
        if ((names && !names.has(tool.name)) || !selection.offersTool(server.integration, tool.name)) continue;
        const capability = `${server.integration}:${tool.name}`;
        if (!tokenCovers(caller, server.integration, capability)) continue;
        const decision = view.decide(this.decisionRequest(caller, capability));
        if (decision.allowed || awaitsConsent(decision))
          tools.push({ ...tool, name: gatewayToolName(server.integration, tool.name) });
      }
    }
    return tools;
  }

  private async callTool(
    auth: GatewayAuth,
    era: McpRequestContext['era'],
    name: string,
    args: Record<string, unknown> | undefined,
    signal: AbortSignal,
    onProgress: ProgressRelay | undefined,
    logs: LogsFor,
  ) {
    const { caller } = auth;
    let view = await this.policyView(auth);
    // A tool outside a virtual server's selection is exactly an unknown tool (its existence does not leak).
    const selection = selectionOf(view.virtualServers, auth.virtualServer);
    const named = splitGatewayToolName(name);
    const split = named && selection.offersTool(named.integration, named.tool) ? named : undefined;
    let server = split && view.servers.find((s) => s.integration === split.integration);
    let unconnected = false;
    if (server && split && !server.tools.has(split.tool)) {
      // A tool the catalog lacks may be new upstream: the person's list is read again (rate-bounded).
      const token = await this.tokenIfConnected(caller, server.integration, server);
      unconnected = token === undefined;
      const read = token
        ? await this.catalog.forPerson(
            caller.orgId,
            server,
            caller.onBehalfOf,
            token,
            Math.min(UNKNOWN_TOOL_REREAD_MS, this.env.MCP_TOOLS_TTL_MS),
          )
        : undefined;
      if (read?.catalogChanged) {
        view = await this.policyView(auth, true);
        server = view.servers.find((s) => s.integration === split.integration);
      }
    }
    const tool = split && server?.tools.get(split.tool);
    if (split && server && !tool && unconnected && server.auth === 'mcp_oauth')
      return this.connectFirst(auth, era, view, server, name, args);
    if (!split || !server || !tool) throw new ProtocolError(-32602, `Unknown tool: ${name}`);
    if (await this.withdrawn(caller, server, tool.name)) throw new ProtocolError(-32602, `Unknown tool: ${name}`);
    const resource = resourceOf(server, tool.name, args);
    return this.invoke(
      auth,
      era,
      view,
      server,
      {
        capability: `${server.integration}:${tool.name}`,
        resource,
        operation: `MCP tools/call ${name}`,
        held: {
          method: 'tools/call',
          name,
          arguments: args,
          tool: {
            ...(tool.title ? { title: tool.title } : {}),
            ...(tool.description ? { description: tool.description } : {}),
            ...(tool.annotations ? { annotations: tool.annotations } : {}),
          },
        },
      },
      (as) => this.upstream.callTool(server, as, tool, args, signal, onProgress, logs(server.integration)),
      (result) => (result.isError ? 'tool_error' : undefined),
    );
  }

  /**
   * A tool the org's catalog still keeps (another person may be offered it) but this person's
   * own list, as last read, lacks: the server withdrew it from them (its list_changed was
   * seen, or its TTL ran out). Refused at once — unless a read now (only when the kept list
   * is stale) shows it again.
   */
  private async withdrawn(caller: GatewayAuth['caller'], server: McpServerView, tool: string): Promise<boolean> {
    const kept = this.catalog.kept(caller.orgId, server.integration, caller.onBehalfOf);
    if (!kept || kept.has(tool)) return false;
    const token = await this.tokenIfConnected(caller, server.integration, server);
    if (!token) return false;
    const read = await this.catalog.forPerson(caller.orgId, server, caller.onBehalfOf, token);
    return read.names !== undefined && !read.names.has(tool);
  }

  /**
   * A tool of a server with its own OAuth that nobody has listed yet (its list needs a
   * person's token, and this person has none): decided as `<integration>:tools` (the consent
   * a connection gives), so the person gets the connect elicitation rather than an unknown
   * tool. Once connected, the retry reads their list first; a tool still missing is unknown.
   */
  private connectFirst(
    auth: GatewayAuth,
    era: McpRequestContext['era'],
    view: McpPolicyView,
    server: McpServerView,
    name: string,
    args: Record<string, unknown> | undefined,
  ) {
    return this.invoke(
      auth,
      era,
      view,
      server,
      {
        capability: `${server.integration}:tools`,
        resource: undefined,
        operation: `MCP tools/call ${name}`,
        held: { method: 'tools/call', name, arguments: args, tool: {} },
      },
      () => Promise.reject(new ProtocolError(-32602, `Unknown tool: ${name}`)),
    );
  }

  /**
   * One decided, audited upstream exchange: the intent recorded; the token's scope and the
   * three layers checked (tools the person has not consented to yet pass to the connection
   * check); the person's credential found (else the connect elicitation); `run` with it; the
   * outcome recorded. `failed` names a result that is an error of the tool's own.
   */
  private async invoke<T>(
    auth: GatewayAuth,
    era: McpRequestContext['era'],
    view: McpPolicyView,
    server: McpServerView,
    what: {
      capability: string;
      /** What the call touches: decided by resource-scoped rules, and recorded. */
      resource: string | undefined;
      /** Recorded only (a URI the caller wrote is no resource policy patterns can be trusted to match). */
      recordedResource?: string;
      operation: string;
      /** What the person approves when an `approval_required` rule holds the call: the operation, its name, its arguments. */
      held: Pick<HeldCall, 'method' | 'name' | 'arguments' | 'tool'>;
    },
    /** The exchange, as the person with their credential (an upstream session is never another org's or person's). */
    run: (as: UpstreamCaller) => Promise<T>,
    failed: (result: T) => string | undefined = () => undefined,
  ) {
    const { caller, request } = auth;
    const { capability, resource } = what;
    const base = {
      ...auditSubject(request),
      action: 'capability_invocation' as const,
      orgId: caller.orgId,
      applicationId: caller.applicationId,
      userId: caller.onBehalfOf,
      integration: server.integration,
      capability,
      ...(resource !== undefined ? { resource } : what.recordedResource ? { resource: what.recordedResource } : {}),
      operation: what.operation,
      requestId: String(request.id),
      ...(auth.virtualServer !== undefined ? { mcpVirtualServer: auth.virtualServer } : {}),
    };
    const intent = await this.audited(() => this.recorder.recordIntent(base));
    // The connection is known once the credential is, the approval once settled: the outcome names them.
    let connectionId: string | undefined;
    let approvalId: string | undefined;
    const finish = (outcome: Parameters<AuditRecorder['recordOutcome']>[1], policy?: Decision) =>
      this.audited(() =>
        this.recorder.recordOutcome(
          {
            ...intent,
            record: {
              ...intent.record,
              ...(policy ? { policy: auditPolicyOf(policy) } : {}),
              ...(connectionId ? { connectionId } : {}),
              ...(approvalId ? { approvalId } : {}),
            },
          },
          outcome,
        ),
      );

    if (!tokenCovers(caller, server.integration, capability)) {
      await finish({ outcome: 'denied', errorCode: 'scope_not_granted' });
      throw new ProtocolError(
        MCP_ERRORS.insufficientScope,
        `The access token does not carry the scope for ${capability}`,
        {
          code: 'scope_not_granted',
          scopes: [`${server.integration}:tools`, capability],
        },
      );
    }
    const decision = view.decide({ ...this.decisionRequest(caller, capability), ...(resource ? { resource } : {}) });
    if (!decision.allowed && !awaitsConsent(decision)) {
      await finish({ outcome: 'denied', errorCode: 'policy_denied' }, decision);
      throw policyError(capability, decision);
    }

    // The person's own credential for the integration: else they connect first.
    let credential: Credential;
    try {
      credential =
        server.auth === 'none'
          ? anonymous(server.integration)
          : await this.credentialFor(
              caller,
              server.integration,
              decision.allowed ? view.revision : undefined,
              server,
              /* link */ true,
            );
      connectionId = credential.connectionId || undefined;
    } catch (error) {
      const appError = AppError.from(error);
      const connectUrl = appError.extensions?.connectUrl;
      await finish({ outcome: 'denied', errorCode: appError.code }, decision);
      if (appError.code === 'connection_required' && typeof connectUrl === 'string')
        return connectElicitation(era, server.integration, connectUrl);
      throw new ProtocolError(MCP_ERRORS.policyDenied, appError.message, { code: appError.code });
    }
    if (!decision.allowed) {
      // Connected, but the person's consent does not cover this tool (user layer).
      await finish({ outcome: 'denied', errorCode: 'policy_denied' }, decision);
      throw policyError(capability, decision);
    }

    if (decision.approval) {
      // An org or user rule holds this call for the person's passkey approval of exactly it.
      const settled = await this.settleApproval(
        { ...this.decisionRequest(caller, capability), ...what.held },
        (errorCode) => finish({ outcome: 'error', errorCode }, decision),
      );
      approvalId = settled.approvalId;
      if (settled.state === 'pending') {
        await finish({ outcome: 'denied', errorCode: 'approval_required' }, decision);
        return approvalElicitation(era, what.held, settled.url);
      }
      if (settled.state === 'declined') {
        await finish({ outcome: 'denied', errorCode: 'approval_declined' }, decision);
        throw new ProtocolError(
          MCP_ERRORS.approvalDeclined,
          `The person declined this ${what.held.method} of ${escapeInvisible(what.held.name)}; asking again needs a new approval`,
          { code: 'approval_declined', approvalId },
        );
      }
    }

    let result: T;
    try {
      result = await run(upstreamCaller(caller, credential.accessToken));
    } catch (error) {
      if (error instanceof UpstreamFailure) {
        // The source may have revoked or expired the token: the next call asks the broker again.
        if (error.kind === 'unauthorized') this.refused(credential, server.auth === 'mcp_oauth');
        await finish({ outcome: 'error', errorCode: `upstream_${error.kind}` }, decision);
        throw upstreamError(server.integration, error);
      }
      const appError = AppError.from(error);
      await finish({ ...outcomeOf(error) }, decision);
      throw new ProtocolError(MCP_ERRORS.upstream, appError.message, { code: appError.code });
    }
    const errorCode = failed(result);
    try {
      await finish({ outcome: errorCode ? 'error' : 'allowed', ...(errorCode ? { errorCode } : {}) }, decision);
    } catch (error) {
      // The call ran (its intent is stored): answering an error would make the agent repeat
      // it. The missing outcome is logged for the operator; the intent marks the call.
      this.logger.error(
        { err: (error as Error).message, capability, requestId: base.requestId },
        'audit outcome not stored',
      );
    }
    return result;
  }

  // --- resources and prompts: decided as `<integration>:tools`, named per integration ---

  /**
   * Whether a stream's caller is shown `integration`'s resources and prompts at its endpoint
   * now, as resources/list and prompts/list there would show them: offered whole there, and
   * readable (readableServer). False once its virtual server is gone.
   */
  private async showsWhole(caller: StreamCaller, at: { integration: string; url: string }): Promise<boolean> {
    const view = await this.decider.mcpView(caller);
    const name = caller.virtualServer?.name;
    if (name !== undefined && !view.virtualServers.has(name)) return false;
    const server = this.wholeServer(view, { virtualServer: name }, at.integration);
    // The server that announced it, as the org has it now (not one moved to another URL since).
    if (server?.url !== at.url) return false;
    return (await this.readableServer(caller, view, server)) !== undefined;
  }

  /** Servers whose resources and prompts this person may see: connected, `<integration>:tools` allowed unapproved. */
  private async readable(auth: GatewayAuth): Promise<{ server: McpServerView; token: string; key: string }[]> {
    const view = await this.policyView(auth);
    const selection = selectionOf(view.virtualServers, auth.virtualServer);
    const found = await Promise.all(
      view.servers.map(async (server) =>
        // A virtual server offers resources and prompts of the integrations it selects whole.
        selection.offersWhole(server.integration) ? this.readableServer(auth.caller, view, server) : undefined,
      ),
    );
    return found.filter((r) => r !== undefined);
  }

  /** The server with the caller's credential for it, when they may see its resources and prompts; else none. */
  private async readableServer(
    caller: GatewayAuth['caller'],
    view: McpPolicyView,
    server: McpServerView,
  ): Promise<{ server: McpServerView; token: string; key: string } | undefined> {
    if (!this.listsShown(caller, view, server)) return undefined;
    try {
      const credential =
        server.auth === 'none'
          ? anonymous(server.integration)
          : await this.credentialFor(caller, server.integration, view.revision, server);
      return { server, token: credential.accessToken, key: credential.key };
    } catch {
      return undefined;
    }
  }

  /** Whether policy shows the server's resources and prompts to the caller: `<integration>:tools` allowed unapproved. */
  private listsShown(caller: GatewayAuth['caller'], view: McpPolicyView, server: McpServerView): boolean {
    const capability = `${server.integration}:tools`;
    if (!tokenCovers(caller, server.integration, capability)) return false;
    const decision = view.decide(this.decisionRequest(caller, capability));
    // A listing cannot wait for the person's approval: held servers list nothing (a read is held).
    return decision.allowed && !decision.approval;
  }

  /**
   * A subscription of the caller to `uri`, when they may read it as a listing would show it
   * (connected, `<integration>:tools` allowed unapproved, offered at this endpoint); else the
   * unknown resource's error, so a URI they may not read tells nothing more. Not audited: a
   * subscription reads nothing (the read that follows an update is decided and audited).
   */
  private async subscription(
    auth: GatewayAuth,
    uri: string,
    era: ResourceSubscription['era'],
  ): Promise<Omit<ResourceSubscription, 'seenAt'>> {
    const unwrapped = unwrapUri(uri);
    const view = await this.policyView(auth);
    const server = unwrapped && this.wholeServer(view, auth, unwrapped.integration);
    const readable = server && (await this.readableServer(auth.caller, view, server));
    if (!unwrapped || !server || !readable) throw new ProtocolError(-32602, `Unknown resource: ${uri}`, { uri });
    return {
      caller: auth.caller,
      virtualServer: auth.virtualServer,
      server,
      uri,
      upstreamUri: unwrapped.uri,
      era,
      // The person's token when the upstream stream (re)opens ('' for a server that takes none),
      // as the org's view has the server then: none once they may no longer read it there.
      // Asked of the broker each time, never the calls' kept credential: a stream reopens after
      // the server refused one, and the kept one may be it.
      token: async () => {
        const current = await this.stillReadable({
          caller: auth.caller,
          virtualServer: auth.virtualServer,
          server,
        }).catch(() => undefined);
        if (!current) return undefined;
        if (current.server.auth === 'none') return '';
        return this.tokenIfConnected(auth.caller, current.server.integration, current.server);
      },
    };
  }

  /** Before each delivery and on every change of the org: may the subscriber still read the resource? */
  private async mayStillRead(subscription: ResourceSubscription): Promise<boolean> {
    try {
      return (await this.stillReadable(subscription)) !== undefined;
    } catch (error) {
      // The application (or org) is gone: the subscription ends. Policy unreachable: this
      // delivery is skipped, the next change asks again.
      if (AppError.from(error).code === 'not_found') return false;
      throw error;
    }
  }

  /**
   * The subscription's server as the org's view has it now — the same URL, offered whole at its
   * endpoint, readable by the caller — with their credential for it; else none. Never the view
   * of subscribe time: a server withdrawn from the endpoint or moved to another URL since gets
   * neither deliveries nor a token.
   */
  private async stillReadable(
    subscription: Pick<ResourceSubscription, 'caller' | 'virtualServer' | 'server'>,
  ): Promise<{ server: McpServerView; token: string } | undefined> {
    const view = await this.decider.mcpView(subscription.caller);
    const server = this.wholeServer(view, subscription, subscription.server.integration);
    if (server?.url !== subscription.server.url) return undefined;
    return this.readableServer(subscription.caller, view, server);
  }

  /**
   * A 2026-07-28 listen's `resourceSubscriptions`, each checked as `resources/subscribe` is:
   * those the caller may not read are left out of the filter (so the acknowledgement does not
   * name them, as the spec has for what a server does not honour); the rest are held for the
   * stream's life (`release` ends them). Past the person's cap, 429 `rate_limited`.
   */
  private async listenSubscriptions(
    options: McpHandlerRequestOptions,
  ): Promise<{ parsedBody: unknown; release: () => void }> {
    const auth = options.authInfo?.extra?.gateway as GatewayAuth | undefined;
    const message = options.parsedBody as { params?: unknown } | undefined;
    const params = message?.params as { notifications?: { resourceSubscriptions?: unknown } } | undefined;
    const uris = params?.notifications?.resourceSubscriptions;
    if (!auth || !params?.notifications || !Array.isArray(uris) || uris.length === 0)
      return { parsedBody: options.parsedBody, release: () => undefined };
    // A virtual server offers no resource subscriptions: none is honoured (nor acknowledged) there.
    if (auth.virtualServer !== undefined) {
      const { resourceSubscriptions: _none, ...others } = params.notifications;
      return { parsedBody: { ...message, params: { ...params, notifications: others } }, release: () => undefined };
    }
    const wanted = [...new Set(uris.filter((u): u is string => typeof u === 'string'))];
    const accepted = (
      await Promise.all(wanted.map((uri) => this.subscription(auth, uri, 'modern').catch(() => undefined)))
    ).filter((s) => s !== undefined);
    const { resourceSubscriptions: _all, ...rest } = params.notifications;
    const notifications = accepted.length ? { ...rest, resourceSubscriptions: accepted.map((s) => s.uri) } : rest;
    const release = this.resourceSubscriptions.add(accepted);
    return { parsedBody: { ...message, params: { ...params, notifications } }, release };
  }

  /** Every server's answer to a list, concatenated; a server that fails (or offers none) adds nothing. */
  private async across<T>(
    auth: GatewayAuth,
    list: (client: Client, server: McpServerView) => Promise<T[]>,
  ): Promise<T[]> {
    const servers = await this.readable(auth);
    const lists = await Promise.all(
      servers.map(({ server, token, key }) =>
        this.upstream
          .use(server, upstreamCaller(auth.caller, token), undefined, (client) => list(client, server))
          .catch((error: unknown) => {
            // A refused token is asked for again next time; the list goes on without this server.
            if (error instanceof UpstreamFailure && error.kind === 'unauthorized') this.credentialCache.delete(key);
            return [];
          }),
      ),
    );
    return lists.flat();
  }

  private async listResources(auth: GatewayAuth) {
    const resources = await this.across(auth, async (client, server) =>
      (
        await paged(async (cursor) => {
          const r = await client.listResources(cursor ? { cursor } : {}, { cacheMode: 'bypass' });
          return { items: r.resources, nextCursor: r.nextCursor };
        })
      ).map((r) => ({
        ...r,
        uri: wrapUri(server.integration, r.uri),
      })),
    );
    return { resources, cacheScope: 'private' as const };
  }

  private async listResourceTemplates(auth: GatewayAuth) {
    const resourceTemplates = await this.across(auth, async (client, server) =>
      (
        await paged(async (cursor) => {
          const r = await client.listResourceTemplates(cursor ? { cursor } : {}, { cacheMode: 'bypass' });
          return { items: r.resourceTemplates, nextCursor: r.nextCursor };
        })
      ).map((t) => ({ ...t, uriTemplate: wrapUri(server.integration, t.uriTemplate) })),
    );
    return { resourceTemplates, cacheScope: 'private' as const };
  }

  private async listPrompts(auth: GatewayAuth) {
    const prompts = await this.across(auth, async (client, server) =>
      (
        await paged(async (cursor) => {
          const r = await client.listPrompts(cursor ? { cursor } : {}, { cacheMode: 'bypass' });
          return { items: r.prompts, nextCursor: r.nextCursor };
        })
      ).map((p) => ({
        ...p,
        name: gatewayToolName(server.integration, p.name),
      })),
    );
    return { prompts, cacheScope: 'private' as const };
  }

  private async readResource(
    auth: GatewayAuth,
    era: McpRequestContext['era'],
    uri: string,
    signal: AbortSignal,
    logs: LogsFor,
  ) {
    const unwrapped = unwrapUri(uri);
    const view = await this.policyView(auth);
    const server = unwrapped && this.wholeServer(view, auth, unwrapped.integration);
    if (!unwrapped || !server) throw new ProtocolError(-32602, `Unknown resource: ${uri}`, { uri });
    return this.invoke(
      auth,
      era,
      view,
      server,
      {
        capability: `${server.integration}:tools`,
        // Decided without a resource: resource-scoped denies apply, scoped allows do not.
        resource: undefined,
        recordedResource: unwrapped.uri,
        operation: 'MCP resources/read',
        // The URI as the agent named it (wrapped): the approval is of reading exactly it.
        held: { method: 'resources/read', name: uri, arguments: {}, tool: {} },
      },
      async (as) => {
        const result = await this.upstream.use(
          server,
          as,
          signal,
          (client, s, extras) =>
            client.readResource(
              { uri: unwrapped.uri, ...extras },
              { cacheMode: 'bypass', ...(s ? { signal: s } : {}) },
            ),
          logs(server.integration),
        );
        return {
          ...result,
          contents: result.contents.map((c) => ({ ...c, uri: wrapUri(server.integration, c.uri) })),
        };
      },
    );
  }

  private async getPrompt(
    auth: GatewayAuth,
    era: McpRequestContext['era'],
    name: string,
    args: Record<string, string> | undefined,
    signal: AbortSignal,
    logs: LogsFor,
  ) {
    const split = splitGatewayToolName(name);
    const view = await this.policyView(auth);
    const server = split && this.wholeServer(view, auth, split.integration);
    if (!split || !server) throw new ProtocolError(-32602, `Unknown prompt: ${name}`);
    return this.invoke(
      auth,
      era,
      view,
      server,
      {
        capability: `${server.integration}:tools`,
        resource: `prompt:${split.tool}`,
        operation: `MCP prompts/get ${name}`,
        held: { method: 'prompts/get', name, arguments: args ?? {}, tool: {} },
      },
      (as) =>
        this.upstream.use(
          server,
          as,
          signal,
          (client, s, extras) =>
            client.getPrompt(
              { name: split.tool, ...(args ? { arguments: args } : {}), ...extras },
              s ? { signal: s } : {},
            ),
          logs(server.integration),
        ),
    );
  }

  /**
   * Suggestions for an argument of a prompt (`<integration>.<name>`) or a resource template
   * (`<integration>+<template>`), asked of the server that offers it with the ref unwrapped.
   * Answered like the lists, from the servers whose resources and prompts this person may
   * see, and not audited: a suggestion runs nothing, and the get or read that follows is
   * decided and audited as usual.
   */
  private async complete(auth: GatewayAuth, params: CompleteRequest['params'], signal: AbortSignal) {
    const { ref } = params;
    const target =
      ref.type === 'ref/prompt'
        ? mapDefined(splitGatewayToolName(ref.name), (t) => ({
            integration: t.integration,
            ref: { ...ref, name: t.tool },
          }))
        : mapDefined(unwrapUri(ref.uri), (u) => ({ integration: u.integration, ref: { ...ref, uri: u.uri } }));
    const found = target && (await this.readable(auth)).find((r) => r.server.integration === target.integration);
    if (!target || !found)
      throw new ProtocolError(
        -32602,
        ref.type === 'ref/prompt' ? `Unknown prompt: ${ref.name}` : `Unknown resource: ${ref.uri}`,
      );
    try {
      return await this.upstream.use(found.server, upstreamCaller(auth.caller, found.token), signal, (client, s) =>
        client.complete({ ...params, ref: target.ref }, s ? { signal: s } : {}),
      );
    } catch (error) {
      if (!(error instanceof UpstreamFailure)) throw error;
      if (error.kind === 'unauthorized') this.credentialCache.delete(found.key);
      throw upstreamError(found.server.integration, error);
    }
  }

  /**
   * The person's connection and short-lived source token for the integration. With an allowed
   * decision at policy revision R, the answer is kept while the org stays at R (any grant,
   * connection or rule change bumps it, so a revocation still refuses the very next call)
   * and the token has a minute left; otherwise the broker is asked (it refreshes first when
   * the token is close to expiry). Without a connection: `connection_required`, with a
   * connect link only when `link` is set (a call; a listing makes none — each link is a
   * connect session stored at the broker).
   */
  private async credentialFor(
    caller: GatewayAuth['caller'],
    integration: string,
    revision: bigint | undefined,
    server?: Pick<McpServerView, 'auth' | 'url'>,
    link = false,
  ): Promise<Credential> {
    const key = `${caller.orgId}\u0000${caller.applicationId}\u0000${caller.onBehalfOf}\u0000${integration}`;
    const kept = this.credentialCache.get(key);
    if (kept && revision !== undefined && kept.revision === revision && kept.usableUntil > this.clock.now())
      return forServer(kept, server);
    const grant = await this.credentials.usableGrant(caller, caller.onBehalfOf, integration, link);
    const token = await this.credentials.sourceToken(grant.connectionId);
    const expiresAt = token.expiresAt ? Date.parse(token.expiresAt) : Number.POSITIVE_INFINITY;
    const credential: Credential = {
      key,
      connectionId: grant.connectionId,
      accessToken: token.accessToken,
      credentialVersion: token.credentialVersion,
      resource: token.apiBaseUrl,
      revision: revision ?? -1n,
      usableUntil: Math.min(this.clock.now() + CREDENTIAL_KEEP_MS, expiresAt - TOKEN_MARGIN_MS),
    };
    if (revision !== undefined) {
      this.credentialCache.delete(key);
      this.credentialCache.set(key, credential);
      if (this.credentialCache.size > MAX_CREDENTIALS) {
        const oldest = this.credentialCache.keys().next().value;
        if (oldest !== undefined) this.credentialCache.delete(oldest);
      }
    }
    return forServer(credential, server);
  }

  /**
   * The upstream refused the person's token (401): it is asked for again next time, and the
   * broker told, as for any source refusing a token: it refreshes (an MCP server's own
   * authorization server with the `resource`), or marks the connection as needing the person
   * again when the refresh is refused. Best effort: the call has failed either way. (Only for
   * a server's own OAuth so far: a catalog connection's source is told by its own refusals.)
   */
  private refused(credential: Credential, tellBroker: boolean): void {
    this.credentialCache.delete(credential.key);
    if (!credential.connectionId || !tellBroker) return;
    void this.credentials
      .refused(credential.connectionId, credential.credentialVersion)
      .catch((error: unknown) =>
        this.logger.info(
          { connectionId: credential.connectionId, errorCode: AppError.from(error).code },
          'the refused upstream token was not refreshed',
        ),
      );
  }

  /** The integration's server when the endpoint offers it whole (its resources and prompts); else none, as if unknown. */
  private wholeServer(
    view: McpPolicyView,
    auth: { virtualServer?: string | undefined },
    integration: string,
  ): McpServerView | undefined {
    if (!selectionOf(view.virtualServers, auth.virtualServer).offersWhole(integration)) return undefined;
    return view.servers.find((s) => s.integration === integration);
  }

  private decisionRequest(caller: GatewayAuth['caller'], capability: string) {
    return { orgId: caller.orgId, applicationId: caller.applicationId, userId: caller.onBehalfOf, capability };
  }

  /** The org's view for this request: the edge's (when it fetched one) at first, fetched again when `again`. */
  private async policyView(auth: GatewayAuth, again = false): Promise<McpPolicyView> {
    if (auth.view && !again) return auth.view;
    try {
      return await this.decider.mcpView(auth.caller);
    } catch (error) {
      const appError = AppError.from(error);
      throw new ProtocolError(MCP_ERRORS.unavailable, appError.message, { code: appError.code });
    }
  }

  /**
   * The person's source token for the integration when they have a usable connection; else
   * none — also when the broker could not say, unless `known`: then only a connection found
   * missing or unusable is none, and any other failure is thrown.
   */
  private async tokenIfConnected(
    caller: GatewayAuth['caller'],
    integration: string,
    server: McpServerView | undefined,
    known = false,
  ): Promise<string | undefined> {
    // Only to read what the server lists: never kept (no policy revision vouches for it).
    if (!server) return undefined;
    return this.credentialFor(caller, integration, undefined, server).then(
      (credential) => credential.accessToken,
      (error: unknown) => {
        if (known && !NOT_CONNECTED.has(AppError.from(error).code)) throw error;
        return undefined;
      },
    );
  }

  /**
   * The person's answer to this exact call, or the request it waits on. Arguments too large
   * to approve are invalid params; a store failure is audited and refused as -32014 (the
   * call did not run), never as policy's -32012.
   */
  private async settleApproval(call: HeldCall, failed: (errorCode: string) => Promise<unknown>) {
    try {
      return await this.approvals.settle(call);
    } catch (error) {
      const appError = AppError.from(error);
      await failed(appError.code);
      if (appError.code === 'validation_failed')
        throw new ProtocolError(-32602, appError.message, { code: appError.code });
      throw new ProtocolError(
        MCP_ERRORS.approvalUnavailable,
        'The approval of this call could not be checked, so it did not run; try again',
        { code: appError.code },
      );
    }
  }

  private async audited<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      const appError = AppError.from(error);
      throw new ProtocolError(MCP_ERRORS.auditUnavailable, appError.message, { code: appError.code });
    }
  }
}

/**
 * Whom a stream opened by this request belongs to, and the list it follows: at a virtual
 * server, its name and its selection as the edge found it (the stream's group).
 */
function streamCaller(person: GatewayAuth['caller'], auth: GatewayAuth | undefined): StreamCaller {
  const name = auth?.virtualServer;
  if (name === undefined) return person;
  const found = auth?.view?.virtualServers.get(name);
  return { ...person, virtualServer: { name, selection: found ? selectionKey(found) : '' } };
}

/** A list change on a 2025-11-25 GET stream (a resource's update reaches it through its own sink). */
function legacyNotice(server: Server, event: ServerEvent): Promise<void> | undefined {
  switch (event.kind) {
    case 'tools_list_changed':
      return server.sendToolListChanged();
    case 'resources_list_changed':
      return server.sendResourceListChanged();
    case 'prompts_list_changed':
      return server.sendPromptListChanged();
    default:
      return undefined;
  }
}

function policyError(capability: string, decision: Decision): ProtocolError {
  const error = deniedError(capability, decision);
  return new ProtocolError(MCP_ERRORS.policyDenied, error.message, {
    code: 'policy_denied',
    decidedBy: decision.decidedBy,
    reason: decision.reason,
    matchedRuleIds: decision.matched.flatMap((m) => m.ruleIds),
  });
}

/** The agent's view of a failed upstream exchange. */
function upstreamError(integration: string, error: UpstreamFailure): ProtocolError {
  // The server's own standard error (unknown tool, invalid arguments) reaches the agent as it was.
  if (error.rpcCode !== undefined) return new ProtocolError(error.rpcCode, error.message);
  return new ProtocolError(MCP_ERRORS.upstream, `${integration}: ${error.message}`, { code: `upstream_${error.kind}` });
}

function mapDefined<T, U>(value: T | undefined, map: (value: T) => U): U | undefined {
  return value === undefined ? undefined : map(value);
}

/** Passes one progress report of the upstream call on to the agent. */
type ProgressRelay = (progress: Progress) => void;

/**
 * When the agent asked for progress (`_meta.progressToken`), the upstream's progress
 * notifications of the call reach it under the agent's own token (the upstream saw the
 * gateway's); otherwise none is asked for upstream.
 */
function progressRelay(req: {
  _meta?: { progressToken?: ProgressToken };
  notify: (notification: ServerNotification) => Promise<void>;
}): ProgressRelay | undefined {
  const progressToken = req._meta?.progressToken;
  if (progressToken === undefined) return undefined;
  return ({ progress, total, message }) =>
    void req
      .notify({
        method: 'notifications/progress',
        params: {
          progressToken,
          progress,
          ...(total === undefined ? {} : { total }),
          ...(message === undefined ? {} : { message }),
        },
      })
      // The agent's stream may be gone (it cancelled): the call's own outcome still counts.
      .catch(() => undefined);
}

/** The request's relay of one integration's log messages (undefined: the agent takes none). */
type LogsFor = (integration: string) => LogRelay | undefined;

/** What the handler of a call, read or get knows of its request, as far as logging goes. */
interface LoggedRequest {
  envelope?: { [LOG_LEVEL_META_KEY]?: LoggingLevel | undefined };
  notify: (notification: ServerNotification) => Promise<void>;
}

/** Sends one log message on the request's own response stream. */
function notifier(req: LoggedRequest) {
  return (params: { level: LoggingLevel; logger: string; data: unknown }) =>
    // The agent's stream may be gone (it cancelled): the request's own outcome still counts.
    void req.notify({ method: 'notifications/message', params }).catch(() => undefined);
}

/** Pages through a list (at most 20 pages: a loop guard). */
async function paged<T>(
  page: (cursor: string | undefined) => Promise<{ items: T[]; nextCursor?: string | undefined }>,
): Promise<T[]> {
  const all: T[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 20; i++) {
    const result = await page(cursor);
    all.push(...result.items);
    cursor = result.nextCursor;
    if (!cursor) break;
  }
  return all;
}

/** URL-mode elicitation of the approval page, as for the connect link (the retry after approving runs the call). */
function approvalElicitation(era: McpRequestContext['era'], held: Pick<HeldCall, 'method' | 'name'>, url: string) {
  const message = `Approve this ${held.method} of ${escapeInvisible(held.name)} with your passkey; it runs once, with exactly these arguments.`;
  if (era === 'modern')
    return inputRequired({ inputRequests: { approval: inputRequired.elicitUrl({ url, message }) } });
  throw new UrlElicitationRequiredError([{ mode: 'url', url, message, elicitationId: randomUUID() }], message);
}

/** Whose upstream exchange it is: the person (for their org) with their credential. */
function upstreamCaller(caller: GatewayAuth['caller'], token: string): UpstreamCaller {
  return { orgId: caller.orgId, userId: caller.onBehalfOf, token };
}

/** A server registered with `auth: "none"` is called without any credential. */
function anonymous(integration: string): Credential {
  return {
    key: `none\u0000${integration}`,
    connectionId: '',
    accessToken: '',
    credentialVersion: 0,
    resource: '',
    revision: -1n,
    usableUntil: 0,
  };
}

/** The credential, unless its token was issued for another server than the one called (then the person connects again). */
function forServer(credential: Credential, server: Pick<McpServerView, 'auth' | 'url'> | undefined): Credential {
  if (!server || tokenIsFor(server, credential.resource)) return credential;
  throw new AppError(
    'connection_needs_reauth',
    "The connection's token was issued for another MCP server than the one registered: the person must connect again",
  );
}

/** A short stable digest of a JSON-shaped value (what a stream's caller may see). */
function digestOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('base64url');
}

/** URL-mode elicitation of the connect link: an input-required result (2026-07-28) or error -32042 (2025-11-25). */
function connectElicitation(era: McpRequestContext['era'], integration: string, url: string) {
  const message = `Connect your ${integration} account to continue; your credentials stay with Context Gateway.`;
  if (era === 'modern') return inputRequired({ inputRequests: { connect: inputRequired.elicitUrl({ url, message }) } });
  throw new UrlElicitationRequiredError([{ mode: 'url', url, message, elicitationId: randomUUID() }], message);
}

const RULES_NOTE =
  "Every call is checked against your organization's, the person's and this application's rules and recorded in the audit trail.";

/** The endpoint's instructions: at a virtual server, its name and the description its admin gave it. */
function instructionsFor(auth: GatewayAuth): string {
  if (auth.virtualServer === undefined)
    return `Tools of your organization's connected services, each named <integration>.<tool>. ${RULES_NOTE}`;
  const description = auth.view && selectionOf(auth.view.virtualServers, auth.virtualServer).description;
  return (
    `Virtual server ${auth.virtualServer}${description ? `: ${description}` : ''}. ` +
    `A selection of the tools of your organization's connected services, each named <integration>.<tool>. ${RULES_NOTE}`
  );
}
