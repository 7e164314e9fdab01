import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import type { McpServerView } from './mcp-server-view.js';
import type { StreamCaller } from './mcp-subscribers.js';
import { McpUpstream, type UpstreamListener } from './mcp-upstream.js';

/** One agent's subscription to one resource. */
export interface ResourceSubscription {
  caller: StreamCaller;
  /** The endpoint it was made at (`/mcp/v/<name>`), checked again before each delivery. */
  virtualServer?: string | undefined;
  server: McpServerView;
  /** The URI as the agent names it (`<integration>+<uri>`) and as the server does. */
  uri: string;
  upstreamUri: string;
  /** Where its updates go: its 2026-07-28 listen stream, or the caller's 2025-11-25 GET streams. */
  era: 'modern' | 'legacy';
  /** The person's source token for the server now ('': the server takes none; undefined: not connected any more). */
  token: () => Promise<string | undefined>;
  /** 2025-11-25: when the caller last had a GET stream here (or subscribed). */
  seenAt: number;
}

/** What the gateway tells the registry: who may still read, and how to reach a listen stream. */
export interface SubscriptionHooks {
  /** Whether the subscription's caller may still read its resource (policy, token scope, connection). */
  mayRead(subscription: ResourceSubscription): Promise<boolean>;
  /** Delivers `notifications/resources/updated` to the caller's 2026-07-28 listen streams (each passes on only its own URIs). */
  tellListeners(caller: StreamCaller, uri: string): void;
}

/** After an upstream stream fails, the next try waits this long, doubling up to MAX_BACKOFF_MS. */
const FIRST_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 60_000;
/** A server that offers no resource subscriptions is asked again after this long. */
const UNSUPPORTED_RETRY_MS = 10 * 60_000;
/** A 2025-11-25 subscription whose caller has had no GET stream here for this long ends. */
const LEGACY_IDLE_MS = 5 * 60_000;
const SWEEP_MS = 30_000;

/** One standing upstream stream of a person's subscribed resources on one server. */
interface Watch {
  orgId: string;
  userId: string;
  server: McpServerView;
  /** The server's URIs it is open for (sorted), and the set wanted now. */
  open: string;
  listener: UpstreamListener | undefined;
  backoffMs: number;
  timer: NodeJS.Timeout | undefined;
  closed: boolean;
  /** A reopen is under way (the wanted set changed while one ran: one more after it). */
  opening: boolean;
  again: boolean;
}

/**
 * Resource subscriptions at /mcp. An agent subscribes to a resource by the gateway's URI —
 * on 2026-07-28 in `subscriptions/listen` (`resourceSubscriptions`, for the life of that
 * stream), on 2025-11-25 with `resources/subscribe` (for this application and person: the
 * gateway keeps no sessions; until `resources/unsubscribe`, or LEGACY_IDLE_MS without a GET
 * stream here). Upstream, one standing stream per server and person subscribes to the union
 * of that person's resources on it with their own credential, reopened (with a fresh token)
 * when the union changes or the stream ends. An update is mapped back to the gateway's URI
 * and delivered only to subscriptions whose caller may still read it (checked at each
 * delivery: a revoked grant or a new deny rule ends the subscription). At most
 * MCP_MAX_RESOURCE_SUBSCRIPTIONS per person (`rate_limited`).
 */
@Injectable()
export class McpResourceSubscriptions implements OnApplicationShutdown {
  private readonly subscriptions = new Set<ResourceSubscription>();
  private readonly watches = new Map<string, Watch>();
  /** 2025-11-25 GET streams by caller (org, application, person). */
  private readonly streams = new Map<string, Set<(uri: string) => void>>();
  private readonly sweeper: NodeJS.Timeout;
  private hooks: SubscriptionHooks = {
    mayRead: () => Promise.resolve(false),
    tellListeners: () => undefined,
  };

  constructor(
    private readonly upstream: McpUpstream,
    private readonly clock: Clock,
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.sweeper);
    this.subscriptions.clear();
    await Promise.all([...this.watches.values()].map((w) => this.stop(w)));
    this.watches.clear();
  }

  configure(hooks: SubscriptionHooks): void {
    this.hooks = hooks;
  }

  /**
   * Adds subscriptions (all or none: past the person's cap, `rate_limited`); the returned
   * function ends them (a listen stream's, when it closes).
   */
  add(wanted: readonly Omit<ResourceSubscription, 'seenAt'>[]): () => void {
    const fresh = wanted.filter((w) => !(w.era === 'legacy' && this.findLegacy(w.caller, w.uri)));
    const person = fresh[0]?.caller;
    if (person && this.countFor(person) + fresh.length > this.env.MCP_MAX_RESOURCE_SUBSCRIPTIONS)
      throw new AppError(
        'rate_limited',
        `At most ${this.env.MCP_MAX_RESOURCE_SUBSCRIPTIONS} resource subscriptions per person; unsubscribe from one first`,
      );
    const added = fresh.map((w) => ({ ...w, seenAt: this.clock.now() }));
    for (const s of added) this.subscriptions.add(s);
    for (const s of added) this.sync(s.caller.orgId, s.server, s.caller.onBehalfOf);
    return () => {
      for (const s of added) this.remove(s);
    };
  }

  /** Ends the caller's 2025-11-25 subscription to `uri` (none: nothing to do, as the spec allows). */
  unsubscribe(caller: StreamCaller, uri: string): void {
    const found = this.findLegacy(caller, uri);
    if (found) this.remove(found);
  }

  /** A 2025-11-25 GET stream of the caller: it receives their subscriptions' updates while open. */
  legacyStream(caller: StreamCaller, send: (uri: string) => void): () => void {
    const key = callerKey(caller);
    let sinks = this.streams.get(key);
    if (!sinks) this.streams.set(key, (sinks = new Set()));
    sinks.add(send);
    const joined = sinks;
    return () => {
      joined.delete(send);
      if (joined.size === 0 && this.streams.get(key) === joined) this.streams.delete(key);
      // The idle time counts from the stream's end.
      for (const s of this.subscriptions)
        if (s.era === 'legacy' && callerKey(s.caller) === key) s.seenAt = this.clock.now();
    };
  }

  /** Something of the org changed (a rule, a grant): subscriptions whose caller may no longer read end now. */
  recheck(orgId: string): void {
    for (const s of this.subscriptions)
      if (s.caller.orgId === orgId)
        void this.hooks.mayRead(s).then(
          (may) => may || this.remove(s),
          () => undefined,
        );
  }

  /** Subscriptions of the person (any application, either era). */
  private countFor(caller: StreamCaller): number {
    let count = 0;
    for (const s of this.subscriptions)
      if (s.caller.orgId === caller.orgId && s.caller.onBehalfOf === caller.onBehalfOf) count++;
    return count;
  }

  private findLegacy(caller: StreamCaller, uri: string): ResourceSubscription | undefined {
    const key = callerKey(caller);
    for (const s of this.subscriptions)
      if (s.era === 'legacy' && s.uri === uri && callerKey(s.caller) === key) return s;
    return undefined;
  }

  private remove(subscription: ResourceSubscription): void {
    if (!this.subscriptions.delete(subscription)) return;
    this.sync(subscription.caller.orgId, subscription.server, subscription.caller.onBehalfOf);
  }

  /** The person's subscriptions on the server, as the upstream stream should have them. */
  private wanted(orgId: string, server: McpServerView, userId: string): ResourceSubscription[] {
    return [...this.subscriptions].filter(
      (s) =>
        s.caller.orgId === orgId &&
        s.caller.onBehalfOf === userId &&
        s.server.integration === server.integration &&
        s.server.url === server.url,
    );
  }

  /** Brings the upstream stream of (server, person) in line with their subscriptions. */
  private sync(orgId: string, server: McpServerView, userId: string): void {
    const key = watchKey(orgId, server, userId);
    const uris = uriSet(this.wanted(orgId, server, userId));
    let watch = this.watches.get(key);
    if (!uris) {
      if (watch) {
        this.watches.delete(key);
        void this.stop(watch);
      }
      return;
    }
    if (!watch) {
      if (this.watches.size >= this.env.MCP_MAX_UPSTREAM_LISTENERS) {
        this.logger.warn(
          { orgId, integration: server.integration, limit: this.env.MCP_MAX_UPSTREAM_LISTENERS },
          'MCP upstream listener limit reached; resource updates of this server are not followed',
        );
        return;
      }
      watch = {
        orgId,
        userId,
        server,
        open: '',
        listener: undefined,
        backoffMs: FIRST_BACKOFF_MS,
        timer: undefined,
        closed: false,
        opening: false,
        again: false,
      };
      this.watches.set(key, watch);
    }
    if (watch.open !== uris || !watch.listener) void this.reopen(watch);
  }

  /** Opens the stream for the URIs wanted now, then closes the one it replaces (no gap between them). */
  private async reopen(watch: Watch): Promise<void> {
    if (watch.opening) {
      watch.again = true;
      return;
    }
    watch.opening = true;
    try {
      do {
        watch.again = false;
        if (watch.timer) clearTimeout(watch.timer);
        watch.timer = undefined;
        await this.openOnce(watch);
      } while (watch.again && !watch.closed);
    } finally {
      watch.opening = false;
    }
  }

  private async openOnce(watch: Watch): Promise<void> {
    const subscriptions = this.wanted(watch.orgId, watch.server, watch.userId);
    const uris = uriSet(subscriptions);
    if (watch.closed || !uris) return;
    // Any of the person's subscribers' tokens: it is the person's connection either way.
    let token: string | undefined;
    for (const s of subscriptions) if ((token = await s.token().catch(() => undefined)) !== undefined) break;
    if (watch.closed) return;
    if (token === undefined) return this.retry(watch, MAX_BACKOFF_MS);
    let listener: UpstreamListener | undefined;
    try {
      listener = await this.upstream.watchResources(watch.server, token || undefined, uris.split('\n'), (uri) =>
        this.updated(watch, uri),
      );
    } catch (error) {
      this.logger.info(
        { orgId: watch.orgId, integration: watch.server.integration, err: (error as Error).message },
        'MCP upstream resource subscription could not open; trying again later',
      );
      return this.retry(watch, watch.backoffMs);
    }
    if (!listener) return this.retry(watch, UNSUPPORTED_RETRY_MS);
    if (watch.closed) return void listener.close();
    const replaced = watch.listener;
    watch.listener = listener;
    watch.open = uris;
    watch.backoffMs = FIRST_BACKOFF_MS;
    void replaced?.close();
    void listener.ended.then((how) => {
      if (watch.listener !== listener) return;
      watch.listener = undefined;
      void listener.close();
      this.retry(watch, how === 'unsupported' ? UNSUPPORTED_RETRY_MS : watch.backoffMs);
    });
  }

  private retry(watch: Watch, delayMs: number): void {
    if (watch.closed) return;
    if (watch.timer) clearTimeout(watch.timer);
    watch.backoffMs = Math.min(MAX_BACKOFF_MS, watch.backoffMs * 2);
    watch.timer = setTimeout(() => void this.reopen(watch), delayMs);
    watch.timer.unref();
  }

  /** An update from upstream: to every subscriber of it who may still read it, under the gateway's URI. */
  private updated(watch: Watch, upstreamUri: string): void {
    const told = new Set<string>();
    for (const s of this.wanted(watch.orgId, watch.server, watch.userId)) {
      if (s.upstreamUri !== upstreamUri) continue;
      void this.hooks.mayRead(s).then(
        (may) => {
          if (!may) return this.remove(s);
          // One delivery per caller and URI: its streams each pass on what they asked for.
          const key = `${s.era}\u0000${callerKey(s.caller)}\u0000${s.caller.accessTokenId ?? s.caller.apiKeyId}\u0000${s.uri}`;
          if (told.has(key)) return;
          told.add(key);
          if (s.era === 'modern') this.hooks.tellListeners(s.caller, s.uri);
          else for (const send of this.streams.get(callerKey(s.caller)) ?? []) send(s.uri);
        },
        () => undefined,
      );
    }
  }

  private sweep(): void {
    const idleBefore = this.clock.now() - LEGACY_IDLE_MS;
    for (const s of this.subscriptions)
      if (s.era === 'legacy' && !this.streams.has(callerKey(s.caller)) && s.seenAt < idleBefore) this.remove(s);
  }

  private async stop(watch: Watch): Promise<void> {
    watch.closed = true;
    if (watch.timer) clearTimeout(watch.timer);
    await watch.listener?.close();
  }
}

/** The distinct server URIs of `subscriptions`, sorted, one a line ('' for none). */
function uriSet(subscriptions: readonly ResourceSubscription[]): string {
  return [...new Set(subscriptions.map((s) => s.upstreamUri))].sort().join('\n');
}

function callerKey(caller: StreamCaller): string {
  return `${caller.orgId}\u0000${caller.applicationId}\u0000${caller.onBehalfOf}`;
}

function watchKey(orgId: string, server: McpServerView, userId: string): string {
  return `${orgId}\u0000${server.integration}\u0000${server.url}\u0000${userId}`;
}
