import { Clock } from '@context-gateway/clock';
import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import type { McpServerView } from './mcp-server-view.js';
import { McpUpstream } from './mcp-upstream.js';

/** After a failed read, a server's list is not read again for this long (its stored list serves). */
const RETRY_AFTER_FAILURE_MS = 10_000;
/** A call naming a tool the gateway does not know reads the list again, but not more often than this. */
export const UNKNOWN_TOOL_REREAD_MS = 10_000;

/**
 * Keeps each server's tool list current: read again once MCP_TOOLS_TTL_MS has passed since
 * the last read, and stored in policy when it changed (so new tools become capabilities, and
 * removed ones stop being callable, for every gateway at once). One read per server at a time.
 */
@Injectable()
export class McpToolCatalog {
  private readonly reading = new Map<string, Promise<boolean>>();
  private readonly failedAt = new Map<string, number>();

  constructor(
    private readonly rpc: RpcClient,
    private readonly upstream: McpUpstream,
    private readonly clock: Clock,
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** Whether the org's server's list is due for a read: older than `maxAgeMs` (MCP_TOOLS_TTL_MS by default). */
  stale(orgId: string, server: McpServerView, maxAgeMs = this.env.MCP_TOOLS_TTL_MS): boolean {
    const failed = this.failedAt.get(keyOf(orgId, server));
    if (failed !== undefined && this.clock.now() - failed < RETRY_AFTER_FAILURE_MS) return false;
    return !server.toolsReadAt || this.clock.now() - server.toolsReadAt.getTime() >= maxAgeMs;
  }

  /**
   * Reads the list with `token` (the person's credential, or none) and stores it. Resolves
   * true when policy now holds a different list than `server` (the caller should decide on a
   * fresh view), false when nothing changed or the read failed (the stored list serves).
   */
  refresh(orgId: string, server: McpServerView, token: string | undefined): Promise<boolean> {
    const key = keyOf(orgId, server);
    let pending = this.reading.get(key);
    if (!pending) {
      pending = this.read(orgId, server, token).finally(() => this.reading.delete(key));
      this.reading.set(key, pending);
    }
    return pending;
  }

  private async read(orgId: string, server: McpServerView, token: string | undefined): Promise<boolean> {
    try {
      const { tools } = await this.upstream.listTools(server, token);
      const stored = await this.rpc.request(rpc.policy.setMcpTools, {
        orgId,
        integration: server.integration,
        toolsJson: JSON.stringify(tools),
      });
      this.failedAt.delete(keyOf(orgId, server));
      return stored.server?.toolsDigest !== server.toolsDigest;
    } catch (error) {
      // Only a read with a person's credential backs off: one without (at registration) is
      // expected to fail for servers that need one, and must not delay the first person.
      if (token !== undefined) this.failedAt.set(keyOf(orgId, server), this.clock.now());
      this.logger.warn(
        { orgId, integration: server.integration, err: (error as Error).message },
        'reading an MCP server tool list failed; the stored list serves',
      );
      return false;
    }
  }
}

function keyOf(orgId: string, server: McpServerView): string {
  return `${orgId}\u0000${server.integration}`;
}
