import { AsyncLocalStorage } from 'node:async_hooks';

import { runDetached } from '@context-gateway/observability';
import { LOGGER } from '@context-gateway/service-kit';
import type { ServerEvent, ServerEventBus } from '@modelcontextprotocol/server';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import type { ApplicationCaller } from '../auth/auth.types.js';

/** Who a client stream at /mcp belongs to: an application acting for a person. */
export type StreamCaller = ApplicationCaller & { onBehalfOf: string };

interface Group {
  caller: StreamCaller;
  deliver: Set<(event: ServerEvent) => void>;
  /** What this caller may see now (a digest), as last compared; undefined until first computed. */
  seen: string | undefined;
  /** The comparison under way; `again`: another change came while it ran. */
  checking: Promise<void> | undefined;
  again: boolean;
}

/**
 * The clients listening at /mcp — 2026-07-28 `subscriptions/listen` streams (the SDK's listen
 * router, through `bus`) and 2025-11-25 GET streams — grouped by application, person and token,
 * because what each may see differs: a change is delivered to a group only when what *its*
 * caller may see changed. `check(orgId, userId?)` recomputes the groups' digests (with the
 * `digest` the gateway sets) and tells those whose digest moved `tools_list_changed`.
 *
 * The SDK's listen router subscribes to `bus` without saying for whom; the caller is carried
 * to it in an AsyncLocalStorage set around each /mcp request (`within`), which the router's
 * synchronous subscribe sees.
 */
@Injectable()
export class McpSubscribers {
  private readonly scope = new AsyncLocalStorage<StreamCaller>();
  private readonly groups = new Map<string, Group>();
  private digest: (caller: StreamCaller) => Promise<string> = () => Promise.resolve('');

  readonly bus: ServerEventBus = {
    // Nothing in the gateway publishes to everyone: each group is told on its own (check).
    publish: () => undefined,
    subscribe: (listener) => {
      const caller = this.scope.getStore();
      // A stream opened outside a gateway request (none exists) is told nothing.
      return caller ? this.add(caller, listener) : () => undefined;
    },
  };

  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  /** Sets how a caller's visible list is digested (run as a stream's group opens, then on each change). */
  configure(digest: (caller: StreamCaller) => Promise<string>): void {
    this.digest = digest;
  }

  /** Runs `work` (one /mcp request) with its caller known to `bus`. */
  within<T>(caller: StreamCaller, work: () => T): T {
    return this.scope.run(caller, work);
  }

  /** Registers one stream's delivery; the returned function removes it (idempotent). */
  add(caller: StreamCaller, deliver: (event: ServerEvent) => void): () => void {
    const key = groupKey(caller);
    let group = this.groups.get(key);
    if (!group) {
      group = { caller, deliver: new Set(), seen: undefined, checking: undefined, again: false };
      this.groups.set(key, group);
      // The baseline: what the caller may see as the stream opens.
      this.schedule(group);
    }
    group.deliver.add(deliver);
    const joinedGroup = group;
    return () => {
      joinedGroup.deliver.delete(deliver);
      if (joinedGroup.deliver.size === 0 && this.groups.get(key) === joinedGroup) this.groups.delete(key);
    };
  }

  /** Open streams of this application for this person (with any of its tokens). */
  count(caller: StreamCaller): number {
    let count = 0;
    for (const group of this.groups.values())
      if (
        group.caller.orgId === caller.orgId &&
        group.caller.applicationId === caller.applicationId &&
        group.caller.onBehalfOf === caller.onBehalfOf
      )
        count += group.deliver.size;
    return count;
  }

  /** Open streams at this gateway. */
  get total(): number {
    let total = 0;
    for (const group of this.groups.values()) total += group.deliver.size;
    return total;
  }

  /** Whether the person has any stream open here (through any application). */
  listening(orgId: string, userId: string): boolean {
    for (const group of this.groups.values())
      if (group.caller.orgId === orgId && group.caller.onBehalfOf === userId) return true;
    return false;
  }

  /** Something the org's (or one person's) lists depend on changed: compare and tell whom it concerns. */
  check(orgId: string, userId?: string): void {
    for (const group of this.groups.values())
      if (group.caller.orgId === orgId && (userId === undefined || group.caller.onBehalfOf === userId))
        this.schedule(group);
  }

  /** One comparison per group at a time; changes arriving meanwhile make one more after it. */
  private schedule(group: Group): void {
    if (group.checking) {
      group.again = true;
      return;
    }
    // The group's comparisons run for every later change too: in no request's context.
    group.checking = runDetached(async () => {
      do {
        group.again = false;
        let digest: string;
        try {
          digest = await this.digest(group.caller);
        } catch (error) {
          // Policy unreachable for now: the next change compares again.
          this.logger.warn({ err: (error as Error).message }, 'MCP list comparison failed');
          break;
        }
        // The first comparison is the baseline: nothing to tell yet.
        const moved = group.seen !== undefined && digest !== group.seen;
        group.seen = digest;
        if (moved)
          for (const deliver of group.deliver)
            try {
              deliver({ kind: 'tools_list_changed' });
            } catch (error) {
              this.logger.warn({ err: (error as Error).message }, 'telling an MCP stream of a change failed');
            }
      } while (group.again);
    }).finally(() => (group.checking = undefined));
  }
}

/** Streams see alike when their callers do: same application, person and token (its scopes bound what is seen). */
function groupKey(caller: StreamCaller): string {
  const token = caller.accessTokenId ?? caller.apiKeyId;
  const scopes = [...(caller.tokenScopes ?? [])].sort().join(' ');
  return [caller.orgId, caller.applicationId, caller.onBehalfOf, token, scopes].join('\u0000');
}
