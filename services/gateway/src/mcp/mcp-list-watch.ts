import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import type { McpServerView } from './mcp-server-view.js';
import { McpToolCatalog } from './mcp-tool-catalog.js';
import { type ListKind, McpUpstream } from './mcp-upstream.js';
import { serialRuns } from './serial-runs.js';
import { KeptStream, UpstreamWatches, watchKey } from './upstream-watches.js';

/** How often listeners nobody wants any more are closed, and how long one stays after the last want. */
const SWEEP_MS = 15_000;
const IDLE_MS = 30_000;

/**
 * A person's list of one server changed: their tool list (read again already: what
 * subscribers' lists to check), or the server said its resource or prompt list did (those are
 * listed live, nothing is kept to read again).
 */
export interface ListChange {
  orgId: string;
  integration: string;
  /** The server's URL as the watch has it (a server moved since is no longer this one). */
  url: string;
  userId: string;
  kind: ListKind;
}

/** Hears a change; a promise it returns is awaited before the same watch tells the next one of that kind. */
type ChangeListener = (change: ListChange) => void | Promise<void>;

interface Watch {
  orgId: string;
  server: McpServerView;
  userId: string;
  /** The person's source token for the server now (undefined: not connected any more). */
  token: () => Promise<string | undefined>;
  wantedAt: number;
  stream: KeptStream;
  /**
   * The server said its list changed: read it. One read at a time, in order (serialRuns): a
   * change told during a read makes exactly one more read, started after it, so a burst costs
   * two reads and the list kept is the server's latest — concurrent reads could finish out of
   * order and leave an older list in place.
   */
  changed: () => void;
  /** Resource and prompt list changes announced and not yet passed on (see `extras`). */
  pendingKinds: Set<Exclude<ListKind, 'tools'>>;
  /**
   * Passes the announced resource and prompt list changes on, one fan-out at a time
   * (serialRuns): a burst from the server — a buggy or hostile one included — costs two
   * fan-outs to the person's streams, not one per notification.
   */
  extras: () => void;
}

/**
 * Keeps the gateway's view of people's tool lists current between TTLs: for each person with
 * a client listening at /mcp or a virtual server (subscriptions/listen or a GET stream), one
 * standing stream per org server their endpoints offer, opened with that person's own
 * credential (lists may differ per person: `cacheScope: private`, so no one else's credential
 * can tell their changes). On
 * `notifications/tools/list_changed` the person's list is read again at once (McpToolCatalog
 * .refresh: a removed tool is refused from then on, a new one reported to policy's catalog)
 * and `onChange` listeners are told. After every (re)connect the list is read again too,
 * because a change may have come while no stream was open. The same stream carries the
 * server's `notifications/resources/list_changed` and `prompts/list_changed` (where it
 * announces them): passed on to `onChange` as they come — those lists are not kept (every
 * listing asks the server), so there is nothing to read again, and a change made while no
 * stream was open is not told (the next listing shows it).
 *
 * Bounded: at most MCP_MAX_UPSTREAM_LISTENERS streams (past it, lists follow their TTL), each
 * living at most MCP_UPSTREAM_STREAM_MS, reopened with a fresh token, with exponential
 * backoff after failures, and closed IDLE_MS after the last client of that person left.
 * Other gateway replicas hear of new tools through policy (the catalog change bumps the
 * org's revision on CONTROL); each keeps its own listeners for its own clients.
 */
@Injectable()
export class McpListWatcher extends UpstreamWatches<Watch> {
  private readonly listeners = new Set<ChangeListener>();
  /** Whether a person (of an org) still has a client listening at this gateway. */
  private wanted: (orgId: string, userId: string) => boolean = () => false;

  constructor(
    private readonly upstream: McpUpstream,
    private readonly catalog: McpToolCatalog,
    @Inject(SERVICE_ENV) env: Env,
    @Inject(LOGGER) logger: Logger,
  ) {
    super(env, logger, SWEEP_MS);
  }

  /** Who decides which people are still wanted (the /mcp subscribers). */
  wantedBy(wanted: (orgId: string, userId: string) => boolean): void {
    this.wanted = wanted;
  }

  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Follows the person's lists of `servers` (the org's current view) that `offered` names (the
   * endpoint's selection; all at /mcp): listens to each not yet followed, with
   * `token(integration)` for each (re)connect; stops following servers no longer in the view
   * (removed, or registered at another URL). One followed for another of the person's
   * endpoints is left as it is (swept once they have no stream open here).
   */
  follow(
    orgId: string,
    userId: string,
    servers: readonly McpServerView[],
    token: (integration: string) => Promise<string | undefined>,
    offered: (integration: string) => boolean = () => true,
  ): void {
    const current = new Set(servers.map((s) => watchKey(orgId, s, userId)));
    for (const [key, watch] of this.watches)
      if (watch.orgId === orgId && watch.userId === userId && !current.has(key)) this.drop(key);
    for (const server of servers)
      if (offered(server.integration)) this.watch(orgId, server, userId, () => token(server.integration));
  }

  private watch(orgId: string, server: McpServerView, userId: string, token: () => Promise<string | undefined>): void {
    const key = watchKey(orgId, server, userId);
    const found = this.watches.get(key);
    if (found) {
      found.wantedAt = performance.now();
      found.token = token;
      // The newest view of the server (its catalog as of the org's latest revision).
      found.server = server;
      // Waiting for the person's token: they may have one now.
      found.stream.wake();
      return;
    }
    if (!this.hasRoom(orgId, server.integration, 'this list follows its TTL')) return;
    const watch: Watch = {
      orgId,
      server,
      userId,
      token,
      wantedAt: performance.now(),
      stream: new KeptStream(
        async () => {
          const now = await watch.token().catch(() => undefined);
          // Dropped or shut down while the token was looked up: no upstream session is opened.
          if (watch.stream.stopped) return undefined;
          if (!now) return 'no-token';
          const told = (kind: ListKind) => {
            if (kind === 'tools') return watch.changed();
            watch.pendingKinds.add(kind);
            watch.extras();
          };
          return (await this.upstream.listen(watch.server, now, told)) ?? 'unsupported';
        },
        (error) =>
          this.logger.info(
            { orgId, integration: server.integration, err: error.message },
            'MCP upstream listener could not open; trying again later',
          ),
        // A change may have come while no stream was open: read the list once now.
        () => watch.changed(),
      ),
      changed: () => undefined,
      pendingKinds: new Set(),
      extras: () => undefined,
    };
    watch.changed = serialRuns(
      async () => {
        await this.read(watch);
        return !watch.stream.stopped;
      },
      (error) => this.logger.warn({ err: error.message }, 'reading an MCP server tool list after a change failed'),
    );
    watch.extras = serialRuns(
      async () => {
        const kinds = [...watch.pendingKinds];
        watch.pendingKinds.clear();
        for (const kind of kinds) await this.tell(watch, kind);
        return !watch.stream.stopped;
      },
      (error) => this.logger.warn({ err: error.message }, 'passing an MCP list change on failed'),
    );
    this.watches.set(key, watch);
    watch.stream.reopen();
  }

  /** Reads the person's list after a change (one at a time: Watch.changed) and tells listeners if it moved. */
  private async read(watch: Watch): Promise<void> {
    // The token as of now (the stream may have opened long ago): a person no longer connected
    // is not read for, and their stream is closed (the next open waits for a token).
    const token = await watch.token().catch(() => undefined);
    if (!token) return void watch.stream.listener?.close();
    const read = await this.catalog.refresh(watch.orgId, watch.server, watch.userId, token);
    // A change told but not read must not be lost: the stream is closed, so the next one (after
    // the backoff) reads again.
    if (read.failed) return void watch.stream.listener?.close();
    if (read.listChanged || read.catalogChanged) await this.tell(watch, 'tools');
  }

  /** Tells every listener, and waits for what they return (a listener's failure is logged, not thrown). */
  private async tell(watch: Watch, kind: ListKind): Promise<void> {
    const change: ListChange = {
      orgId: watch.orgId,
      integration: watch.server.integration,
      url: watch.server.url,
      userId: watch.userId,
      kind,
    };
    await Promise.all(
      [...this.listeners].map(async (listener) => {
        try {
          await listener(change);
        } catch (error) {
          this.logger.error({ err: (error as Error).message }, 'MCP list change listener failed');
        }
      }),
    );
  }

  /**
   * Something of the org changed (a grant, a connection): open streams whose person has no
   * token for the server any more are closed (reopened when they have one again), and streams
   * waiting for a token try now (the person may just have connected), not after the wait.
   */
  recheck(orgId: string): void {
    for (const watch of this.watches.values()) {
      if (watch.orgId !== orgId) continue;
      if (!watch.stream.listener) {
        watch.stream.wake();
        continue;
      }
      void watch
        .token()
        .catch(() => undefined)
        .then((token) => (token ? undefined : watch.stream.listener?.close()));
    }
  }

  protected sweep(): void {
    const idleBefore = performance.now() - IDLE_MS;
    for (const [key, watch] of this.watches) {
      if (this.wanted(watch.orgId, watch.userId)) watch.wantedAt = performance.now();
      else if (watch.wantedAt < idleBefore) this.drop(key);
    }
  }
}
