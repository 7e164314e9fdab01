import { AsyncLocalStorage } from 'node:async_hooks';

import { runDetached } from '@context-gateway/observability';
import { LOGGER } from '@context-gateway/service-kit';
import type { ServerEvent, ServerEventBus } from '@modelcontextprotocol/server';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import type { ApplicationCaller } from '../auth/auth.types.js';
import { serialRuns } from './serial-runs.js';

/**
 * Who a client stream belongs to — an application acting for a person — and which list it
 * follows: the org's whole endpoint (/mcp), or `virtualServer` (/mcp/v/<name>), whose
 * `selection` (selectionKey) is the virtual server's as the stream opened.
 */
export type StreamCaller = ApplicationCaller & {
  onBehalfOf: string;
  virtualServer?: { name: string; selection: string };
};

/** One client stream: how it is told of a change, and how the gateway ends it (its endpoint is gone). */
interface Stream {
  deliver: (event: ServerEvent) => void;
  end: (() => void) | undefined;
}

/**
 * What a stream's caller may see now, digested: `tools`, the tool list; `lists`, which
 * servers' resources and prompts are shown to them (those lists are read live, so which
 * servers they come from is what the gateway decides). Undefined when the endpoint is gone
 * (a deleted virtual server).
 */
export interface Visible {
  tools: string;
  lists: string;
}
export type VisibleDigest = (caller: StreamCaller) => Promise<Visible | undefined>;

interface Group {
  caller: StreamCaller;
  streams: Set<Stream>;
  /** What this caller may see now (digests), as last compared; undefined until first computed. */
  seen: Visible | undefined;
  /** Compares again: one comparison at a time, changes arriving meanwhile make one more after it. */
  compare: () => void;
}

/**
 * The clients listening at /mcp and /mcp/v/<name> — 2026-07-28 `subscriptions/listen` streams
 * (the SDK's listen router, through `bus`) and 2025-11-25 GET streams — grouped by application,
 * person, token and endpoint (a virtual server by name and selection), because what each may
 * see differs: a change is delivered to a group only when what *its* caller may see there
 * changed. `check(orgId, userId?)` recomputes the groups' digests (with the `digest` the
 * gateway sets) and tells those whose tools moved `tools_list_changed`, and those shown
 * other servers' resources and prompts `resources_list_changed` and `prompts_list_changed`
 * (a rule, a grant, a connection or a virtual server's selection changed); a group whose
 * virtual server was deleted has its streams ended. `listChanged` tells a person's streams of
 * an upstream resource or prompt list change, where their caller is shown that server's list.
 *
 * The SDK's listen router subscribes to `bus` without saying for whom; the caller (and how to
 * end the stream) is carried to it in an AsyncLocalStorage set around each request
 * (`within`), which the router's synchronous subscribe sees.
 */
@Injectable()
export class McpSubscribers {
  private readonly scope = new AsyncLocalStorage<{ caller: StreamCaller; end: (() => void) | undefined }>();
  private readonly groups = new Map<string, Group>();
  private digest: VisibleDigest = () => Promise.resolve({ tools: '', lists: '' });

  readonly bus: ServerEventBus = {
    // Nothing in the gateway publishes to everyone: each group is told on its own (check).
    publish: () => undefined,
    subscribe: (listener) => {
      const store = this.scope.getStore();
      // A stream opened outside a gateway request (none exists) is told nothing.
      return store ? this.add(store.caller, listener, store.end) : () => undefined;
    },
  };

  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  /** Sets how a caller's visible list is digested (run as a stream's group opens, then on each change). */
  configure(digest: VisibleDigest): void {
    this.digest = digest;
  }

  /**
   * Runs `work` (one request) with its caller known to `bus`, and `end`: how the gateway ends
   * a stream the request opens there.
   */
  within<T>(caller: StreamCaller, work: () => T, end?: () => void): T {
    return this.scope.run({ caller, end }, work);
  }

  /**
   * Registers one stream: its delivery, and `end` (the gateway ends it; without one it is
   * told of the change instead). The returned function removes it (idempotent).
   */
  add(caller: StreamCaller, deliver: (event: ServerEvent) => void, end?: () => void): () => void {
    const key = groupKey(caller);
    let group = this.groups.get(key);
    if (!group) {
      const opened: Group = { caller, streams: new Set(), seen: undefined, compare: () => undefined };
      const runs = serialRuns(
        () => this.compare(opened),
        // Policy unreachable for now: the next change compares again.
        (error) => this.logger.warn({ err: error.message }, 'MCP list comparison failed'),
      );
      // The group's comparisons run for every later change too: in no request's context.
      opened.compare = () => runDetached(runs);
      group = opened;
      this.groups.set(key, group);
      // The baseline: what the caller may see as the stream opens.
      group.compare();
    }
    const stream: Stream = { deliver, end };
    group.streams.add(stream);
    const joinedGroup = group;
    return () => {
      joinedGroup.streams.delete(stream);
      if (joinedGroup.streams.size === 0 && this.groups.get(key) === joinedGroup) this.groups.delete(key);
    };
  }

  /** Delivers `event` to the streams of exactly this caller (each passes on only what its own filter asks for). */
  tell(caller: StreamCaller, event: ServerEvent): void {
    for (const stream of this.groups.get(groupKey(caller))?.streams ?? []) this.deliver(stream, event);
  }

  /**
   * Open streams here: of this application for this person (with any of its tokens), of the
   * caller's org (every application and person), and in all — the three bounds a new stream
   * must stay within.
   */
  open(caller: StreamCaller): { person: number; org: number; total: number } {
    const open = { person: 0, org: 0, total: 0 };
    for (const group of this.groups.values()) {
      const streams = group.streams.size;
      open.total += streams;
      if (group.caller.orgId !== caller.orgId) continue;
      open.org += streams;
      if (group.caller.applicationId === caller.applicationId && group.caller.onBehalfOf === caller.onBehalfOf)
        open.person += streams;
    }
    return open;
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
      if (group.caller.orgId === orgId && (userId === undefined || group.caller.onBehalfOf === userId)) group.compare();
  }

  /**
   * The person's `kind` list of one server changed upstream (resources and prompts: listed
   * live, so there is no digest to compare): each of their streams is told
   * `<kind>_list_changed` when `sees` says its caller is shown that server's list at its
   * endpoint. Every group is asked first, then all are told at once; a group whose answer
   * failed (policy unreachable) is not told.
   */
  async listChanged(
    orgId: string,
    userId: string,
    kind: 'resources' | 'prompts',
    sees: (caller: StreamCaller) => Promise<boolean>,
  ): Promise<void> {
    const groups = [...this.groups.values()].filter((g) => g.caller.orgId === orgId && g.caller.onBehalfOf === userId);
    const seen = await Promise.all(
      groups.map((group) =>
        sees(group.caller).catch((error: unknown) => {
          this.logger.warn({ err: (error as Error).message }, 'MCP list change not told: who sees it is unknown');
          return false;
        }),
      ),
    );
    const event: ServerEvent = { kind: kind === 'resources' ? 'resources_list_changed' : 'prompts_list_changed' };
    groups.forEach((group, i) => {
      if (seen[i]) for (const stream of group.streams) this.deliver(stream, event);
    });
  }

  /** Compares what the group's caller may see with what it saw, and tells its streams what moved; false: stop. */
  private async compare(group: Group): Promise<boolean> {
    const visible = await this.digest(group.caller);
    if (visible === undefined) {
      this.endAll(group);
      return false;
    }
    const { seen } = group;
    group.seen = visible;
    // The first comparison is the baseline: nothing to tell yet.
    if (seen === undefined) return true;
    const events: ServerEvent[] = [];
    if (visible.tools !== seen.tools) events.push({ kind: 'tools_list_changed' });
    if (visible.lists !== seen.lists) events.push({ kind: 'resources_list_changed' }, { kind: 'prompts_list_changed' });
    for (const event of events) for (const stream of group.streams) this.deliver(stream, event);
    return true;
  }

  /**
   * The group's endpoint is gone (its virtual server was deleted): each stream is ended — its
   * client learns the list changed and, asking for it, that the endpoint is no more (404) — and
   * the group forgotten; a stream opened at the name later is refused.
   */
  private endAll(group: Group): void {
    for (const [key, found] of this.groups) if (found === group) this.groups.delete(key);
    for (const stream of [...group.streams])
      try {
        if (stream.end) stream.end();
        else stream.deliver({ kind: 'tools_list_changed' });
      } catch (error) {
        this.logger.warn({ err: (error as Error).message }, 'ending an MCP stream failed');
      }
    group.streams.clear();
  }

  private deliver(stream: Stream, event: ServerEvent): void {
    try {
      stream.deliver(event);
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, 'telling an MCP stream of a change failed');
    }
  }
}

/**
 * Streams see alike when their callers do — same application, person and token (its scopes
 * bound what is seen) — at the same endpoint: a virtual server's streams by its name and its
 * selection as they opened (one opened after a replacement compares from its own baseline).
 */
function groupKey(caller: StreamCaller): string {
  const token = caller.accessTokenId ?? caller.apiKeyId;
  const scopes = [...(caller.tokenScopes ?? [])].sort().join(' ');
  const endpoint = caller.virtualServer ? `v/${caller.virtualServer.name}\u0001${caller.virtualServer.selection}` : '';
  return [caller.orgId, caller.applicationId, caller.onBehalfOf, token, scopes, endpoint].join('\u0000');
}
