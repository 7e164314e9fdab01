import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import type { McpServerView } from './mcp-server-view.js';
import type { StreamCaller } from './mcp-subscribers.js';
import { McpUpstream } from './mcp-upstream.js';
import { KeptStream, type Opening, UpstreamWatches, watchKey } from './upstream-watches.js';

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

/** A 2025-11-25 subscription whose caller has had no GET stream here for this long ends. */
const LEGACY_IDLE_MS = 5 * 60_000;
const SWEEP_MS = 30_000;

/** One standing upstream stream of a person's subscribed resources on one server. */
interface Watch {
  orgId: string;
  userId: string;
  server: McpServerView;
  /** The server's URIs the stream is open for (sorted, one a line). */
  open: string;
  stream: KeptStream;
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
export class McpResourceSubscriptions extends UpstreamWatches<Watch> {
  private readonly subscriptions = new Set<ResourceSubscription>();
  /** 2025-11-25 GET streams by caller (org, application, person). */
  private readonly streams = new Map<string, Set<(uri: string) => void>>();
  private hooks: SubscriptionHooks = {
    mayRead: () => Promise.resolve(false),
    tellListeners: () => undefined,
  };

  constructor(
    private readonly upstream: McpUpstream,
    private readonly clock: Clock,
    @Inject(SERVICE_ENV) env: Env,
    @Inject(LOGGER) logger: Logger,
  ) {
    super(env, logger, SWEEP_MS);
  }

  override async onApplicationShutdown(): Promise<void> {
    this.subscriptions.clear();
    await super.onApplicationShutdown();
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
    if (!uris) return this.drop(key);
    if (!watch) {
      if (!this.hasRoom(orgId, server.integration, 'resource updates of this server are not followed')) return;
      const opened: Watch = {
        orgId,
        userId,
        server,
        open: '',
        stream: new KeptStream(
          () => this.openFor(opened),
          (error) =>
            this.logger.info(
              { orgId, integration: server.integration, err: error.message },
              'MCP upstream resource subscription could not open; trying again later',
            ),
        ),
      };
      this.watches.set(key, (watch = opened));
    }
    if (watch.open !== uris || !watch.stream.listener) watch.stream.reopen();
  }

  /** Opens a stream for the URIs wanted now (KeptStream closes the one it replaces once it is open). */
  private async openFor(watch: Watch): Promise<Opening> {
    const subscriptions = this.wanted(watch.orgId, watch.server, watch.userId);
    const uris = uriSet(subscriptions);
    if (!uris) return undefined;
    // Any of the person's subscribers' tokens: it is the person's connection either way.
    let token: string | undefined;
    for (const s of subscriptions) if ((token = await s.token().catch(() => undefined)) !== undefined) break;
    // Dropped or shut down while the token was looked up: no upstream session is opened.
    if (watch.stream.stopped) return undefined;
    if (token === undefined) return 'no-token';
    const listener = await this.upstream.watchResources(watch.server, token || undefined, uris.split('\n'), (uri) =>
      this.updated(watch, uri),
    );
    if (!listener) return 'unsupported';
    watch.open = uris;
    return listener;
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

  protected sweep(): void {
    const idleBefore = this.clock.now() - LEGACY_IDLE_MS;
    for (const s of this.subscriptions)
      if (s.era === 'legacy' && !this.streams.has(callerKey(s.caller)) && s.seenAt < idleBefore) this.remove(s);
  }
}

/** The distinct server URIs of `subscriptions`, sorted, one a line ('' for none). */
function uriSet(subscriptions: readonly ResourceSubscription[]): string {
  return [...new Set(subscriptions.map((s) => s.upstreamUri))].sort().join('\n');
}

function callerKey(caller: StreamCaller): string {
  return `${caller.orgId}\u0000${caller.applicationId}\u0000${caller.onBehalfOf}`;
}
