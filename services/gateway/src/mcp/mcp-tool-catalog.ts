import { Clock } from '@context-gateway/clock';
import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import type { McpServerView, UpstreamTool } from './mcp-server-view.js';
import { McpUpstream } from './mcp-upstream.js';

/** After a failed read, the same list is not read again for this long (what is known serves). */
const RETRY_AFTER_FAILURE_MS = 10_000;
/** A call naming a tool the gateway does not know reads the list again, but not more often than this. */
export const UNKNOWN_TOOL_REREAD_MS = 10_000;
/** People whose lists one gateway keeps (least recently read first out). */
const MAX_PERSONAL_LISTS = 50_000;

/** An upstream `ttlMs` shorter than this counts as this (a burst of lists is one read, not one each). */
const MIN_LIST_TTL_MS = 1_000;

interface PersonalList {
  names: ReadonlySet<string>;
  readAt: number;
  /** How long the server said its list stays fresh (`ttlMs`); undefined when it did not say. */
  ttlMs: number | undefined;
}

/** What a read tells the caller: the tools the server offers this person, and whether the org's catalog changed. */
export interface ToolRead {
  /** undefined when never read successfully (the org's catalog is all there is to go by). */
  names: ReadonlySet<string> | undefined;
  catalogChanged: boolean;
  /** The person's list differs from the one kept before this read (a tool came or went). */
  listChanged?: boolean;
  /** The read failed (the last known list answered). */
  failed?: boolean;
}

/**
 * The tools of an org's remote MCP servers, read the way the servers offer them: a server may
 * list different tools to different people (by their token's scopes), so each person's list
 * is read with their own credential and kept here for the list's own `ttlMs` (at least
 * MIN_LIST_TTL_MS), at most MCP_TOOLS_TTL_MS — or until the server says the list changed
 * (`refresh`, from McpListWatcher) — while the org's
 * catalog in policy (what policy knows as capabilities) takes in every tool any read showed
 * (policy.v1.set_mcp_tools; a tool unseen for MCP_TOOLS_RETAIN_UNSEEN_MS drops out). A read
 * is reported to policy when it shows a tool the catalog lacks or defines differently, or
 * when the catalog's dates need renewing. One read per person and server at a time.
 */
@Injectable()
export class McpToolCatalog {
  private readonly personal = new Map<string, PersonalList>();
  private readonly reading = new Map<string, Promise<ToolRead>>();
  private readonly failedAt = new Map<string, number>();
  /** When this gateway last reported a server's list to policy. */
  private readonly reportedAt = new Map<string, number>();

  constructor(
    private readonly rpc: RpcClient,
    private readonly upstream: McpUpstream,
    private readonly clock: Clock,
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /**
   * The person's list (read with `token` when the kept one is older than `maxAgeMs`,
   * MCP_TOOLS_TTL_MS by default, or than the list's own `ttlMs`). A failed read answers the
   * last known list, if any. Freshness is checked when a list is needed, never polled (the
   * spec's advice for `ttlMs`).
   */
  forPerson(
    orgId: string,
    server: McpServerView,
    userId: string,
    token: string,
    maxAgeMs = this.env.MCP_TOOLS_TTL_MS,
  ): Promise<ToolRead> {
    const key = personKey(orgId, server.integration, userId);
    const kept = this.personal.get(key);
    const failed = this.failedAt.get(key);
    const now = this.clock.now();
    const freshFor = Math.min(maxAgeMs, Math.max(MIN_LIST_TTL_MS, kept?.ttlMs ?? Number.POSITIVE_INFINITY));
    if ((kept && now - kept.readAt < freshFor) || (failed !== undefined && now - failed < RETRY_AFTER_FAILURE_MS))
      return Promise.resolve({ names: kept?.names, catalogChanged: false });
    let pending = this.reading.get(key);
    if (!pending) {
      pending = this.read(orgId, server, userId, key, token).finally(() => this.reading.delete(key));
      this.reading.set(key, pending);
    }
    return pending;
  }

  /**
   * Reads the person's list now, because the server said it changed: a read already under
   * way may have started before the change, so this one starts after it (and a failure is
   * not held against the next read).
   */
  async refresh(orgId: string, server: McpServerView, userId: string, token: string): Promise<ToolRead> {
    const key = personKey(orgId, server.integration, userId);
    await this.reading.get(key)?.catch(() => undefined);
    this.failedAt.delete(key);
    const pending = this.read(orgId, server, userId, key, token).finally(() => {
      if (this.reading.get(key) === pending) this.reading.delete(key);
    });
    this.reading.set(key, pending);
    return pending;
  }

  /** The person's list as last read (whatever its age), without reading: undefined when never read. */
  kept(orgId: string, integration: string, userId: string): ReadonlySet<string> | undefined {
    return this.personal.get(personKey(orgId, integration, userId))?.names;
  }

  /** A read without any credential (at registration): what the server offers anyone, into the catalog. */
  async anonymous(orgId: string, server: McpServerView): Promise<void> {
    try {
      const { tools } = await this.upstream.listTools(server, { orgId, userId: undefined, token: undefined });
      await this.report(orgId, server, tools);
    } catch (error) {
      // Expected for servers that need a credential: the first connected person's read fills the catalog.
      this.logger.info(
        { orgId, integration: server.integration, err: (error as Error).message },
        'MCP server lists no tools without a credential',
      );
    }
  }

  private async read(
    orgId: string,
    server: McpServerView,
    userId: string,
    key: string,
    token: string,
  ): Promise<ToolRead> {
    let tools: UpstreamTool[];
    let ttlMs: number | undefined;
    try {
      ({ tools, ttlMs } = await this.upstream.listTools(server, { orgId, userId, token }));
    } catch (error) {
      this.failedAt.set(key, this.clock.now());
      this.logger.warn(
        { orgId, integration: server.integration, err: (error as Error).message },
        'reading an MCP server tool list failed; the last known list serves',
      );
      return { names: this.personal.get(key)?.names, catalogChanged: false, failed: true };
    }
    this.failedAt.delete(key);
    const names = new Set(tools.map((t) => t.name));
    const before = this.personal.get(key)?.names;
    const listChanged = !before || before.size !== names.size || [...names].some((n) => !before.has(n));
    this.personal.delete(key);
    this.personal.set(key, { names, readAt: this.clock.now(), ttlMs });
    if (this.personal.size > MAX_PERSONAL_LISTS) {
      const oldest = this.personal.keys().next().value;
      if (oldest !== undefined) this.personal.delete(oldest);
    }
    let catalogChanged = false;
    if (this.reportDue(orgId, server, tools)) {
      try {
        catalogChanged = await this.report(orgId, server, tools);
      } catch (error) {
        // The person's own list still serves them; the catalog catches up on a later read.
        this.logger.warn(
          { orgId, integration: server.integration, err: (error as Error).message },
          'storing an MCP server tool list in policy failed',
        );
      }
    }
    return { names, catalogChanged, listChanged };
  }

  /** A tool the catalog lacks or defines differently, or dates that need renewing before they expire. */
  private reportDue(orgId: string, server: McpServerView, tools: UpstreamTool[]): boolean {
    const differs = tools.some((tool) => {
      const stored = server.tools.get(tool.name);
      return !stored || JSON.stringify(stored) !== JSON.stringify(tool);
    });
    if (differs) return true;
    const renewEvery = Math.max(1_000, this.env.MCP_TOOLS_RETAIN_UNSEEN_MS / 4);
    const now = this.clock.now();
    const lastReport = Math.max(
      this.reportedAt.get(`${orgId}\u0000${server.integration}`) ?? 0,
      server.toolsReadAt?.getTime() ?? 0,
    );
    return now - lastReport >= renewEvery;
  }

  /** Stores a read in policy's catalog; true when the catalog changed (decide on a fresh view then). */
  private async report(orgId: string, server: McpServerView, tools: UpstreamTool[]): Promise<boolean> {
    const stored = await this.rpc.request(rpc.policy.setMcpTools, {
      orgId,
      integration: server.integration,
      url: server.url,
      toolsJson: JSON.stringify(tools),
      retainUnseenMs: BigInt(this.env.MCP_TOOLS_RETAIN_UNSEEN_MS),
    });
    this.reportedAt.set(`${orgId}\u0000${server.integration}`, this.clock.now());
    return stored.server?.toolsDigest !== server.toolsDigest;
  }
}

function personKey(orgId: string, integration: string, userId: string): string {
  return `${orgId}\u0000${integration}\u0000${userId}`;
}
