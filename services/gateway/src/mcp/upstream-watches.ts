import { runDetached } from '@context-gateway/observability';
import type { OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import type { UpstreamListener } from './mcp-upstream.js';
import { serialRuns } from './serial-runs.js';

/** After a stream fails or ends early, the next try waits this long, doubling up to MAX_BACKOFF_MS. */
const FIRST_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 60_000;
/**
 * A stream that lived this long was healthy: when it ends (its lifetime ran out) it is reopened
 * at once and the backoff starts over. Only then — a server that accepts a stream and drops it
 * at once every time must not be asked again every FIRST_BACKOFF_MS.
 */
const HEALTHY_STREAM_MS = 30_000;
/** A server that offers no such stream is asked again after this long (it may have been upgraded). */
export const UNSUPPORTED_RETRY_MS = 10 * 60_000;

/**
 * What one attempt to open gives: the stream; `unsupported` (the server offers none);
 * `no-token` (the person is not connected now); undefined (nothing to open any more).
 */
export type Opening = UpstreamListener | 'unsupported' | 'no-token' | undefined;

/**
 * One standing upstream stream, kept open: `connect` opens it (asked again after it ends or
 * fails, with exponential backoff), `opened` hears of each new one. `reopen` replaces the open
 * stream (the new one opens before the old one closes: no gap); reopens run one at a time
 * (serialRuns). What a reopen does while a retry waits depends on why it waits:
 * - after a failure (an open that threw, a stream that ended early): the reopen waits with it —
 *   the retry opens what is wanted then, and a burst of changes against a failing server does
 *   not skip its backoff;
 * - the person had no token: the reopen opens now (they may have connected since; a new
 *   subscription or changed URIs should not wait up to MAX_BACKOFF_MS);
 * - the server offers no such stream: the reopen waits with it (UNSUPPORTED_RETRY_MS; what the
 *   person wants does not change what the server offers).
 */
export class KeptStream {
  listener: UpstreamListener | undefined;
  private closed = false;
  private backoffMs = FIRST_BACKOFF_MS;
  private timer: NodeJS.Timeout | undefined;
  /** Why the pending retry waits (`timer`): a reopen cuts only a no-token wait short. */
  private waitingFor: 'backoff' | 'no-token' | 'unsupported' = 'backoff';
  private readonly runs: () => void;

  constructor(
    private readonly connect: () => Promise<Opening>,
    private readonly failed: (error: Error) => void,
    private readonly opened: (listener: UpstreamListener) => void = () => undefined,
  ) {
    this.runs = serialRuns(async () => {
      await this.openOnce();
      return !this.closed;
    }, failed);
  }

  /** Whether it was stopped for good. */
  get stopped(): boolean {
    return this.closed;
  }

  /** Opens a stream for what is wanted now, unless a retry after a failure or refusal waits (it will). */
  reopen(): void {
    // Outlives the request that asked for it (its stream, retries): not in its context.
    if (!this.closed && !this.waits()) runDetached(this.runs);
  }

  /**
   * The person may have a token now (they connected, the org changed): a stream waiting for
   * one opens now. Nothing else is touched — an open stream, a run under way, a backoff.
   */
  wake(): void {
    if (this.timer && this.waitingFor === 'no-token') this.reopen();
  }

  async stop(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.listener?.close();
  }

  private async openOnce(): Promise<void> {
    // A reopen queued behind a run that scheduled a retry leaves it to the retry (but for a no-token wait).
    if (this.closed || this.waits()) return;
    let opening: Opening;
    try {
      opening = await this.connect();
    } catch (error) {
      this.failed(error instanceof Error ? error : new Error(String(error)));
      return this.retry(this.backoff());
    }
    if (this.closed) return void (typeof opening === 'object' ? opening.close() : undefined);
    if (opening === 'no-token') return this.retry(MAX_BACKOFF_MS, 'no-token');
    if (opening === 'unsupported') return this.retry(UNSUPPORTED_RETRY_MS, 'unsupported');
    if (!opening) return;
    const listener = opening;
    const replaced = this.listener;
    this.listener = listener;
    const openedAt = performance.now();
    void replaced?.close();
    // Heard before `opened` runs: should it throw, the stream is still reopened when it ends.
    void listener.ended.then((how) => {
      if (this.listener !== listener) return;
      this.listener = undefined;
      // The stream is over: its client and session go too.
      void listener.close();
      if (how === 'unsupported') return this.retry(UNSUPPORTED_RETRY_MS, 'unsupported');
      if (performance.now() - openedAt < HEALTHY_STREAM_MS) return this.retry(this.backoff());
      this.backoffMs = FIRST_BACKOFF_MS;
      this.retry(0);
    });
    this.opened(listener);
  }

  /** Whether a retry waits that a reopen must leave to it; a no-token wait is cleared instead. */
  private waits(): boolean {
    if (this.timer && this.waitingFor === 'no-token') {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    return this.timer !== undefined;
  }

  /** The wait before the next try after a failure; the one after it doubles. */
  private backoff(): number {
    const wait = this.backoffMs;
    this.backoffMs = Math.min(MAX_BACKOFF_MS, wait * 2);
    return wait;
  }

  private retry(delayMs: number, why: KeptStream['waitingFor'] = 'backoff'): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.waitingFor = why;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.runs();
    }, delayMs);
    this.timer.unref();
  }
}

/**
 * The registries of standing upstream streams (McpListWatcher, McpResourceSubscriptions):
 * their streams by key, bounded by MCP_MAX_UPSTREAM_LISTENERS each, an idle `sweep` every
 * `sweepMs`, all closed at shutdown.
 */
export abstract class UpstreamWatches<W extends { stream: KeptStream }> implements OnApplicationShutdown {
  protected readonly watches = new Map<string, W>();
  private readonly sweeper: NodeJS.Timeout;

  protected constructor(
    protected readonly env: Env,
    protected readonly logger: Logger,
    sweepMs: number,
  ) {
    this.sweeper = setInterval(() => this.sweep(), sweepMs);
    this.sweeper.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.sweeper);
    await Promise.all([...this.watches.values()].map((w) => w.stream.stop()));
    this.watches.clear();
  }

  /** How many upstream streams are open now (health and tests). */
  get openCount(): number {
    return [...this.watches.values()].filter((w) => w.stream.listener).length;
  }

  protected abstract sweep(): void;

  protected drop(key: string): void {
    const watch = this.watches.get(key);
    if (!watch) return;
    this.watches.delete(key);
    void watch.stream.stop();
  }

  /** Whether one more stream fits; if not, says so (`meanwhile`: what the person gets instead). */
  protected hasRoom(orgId: string, integration: string, meanwhile: string): boolean {
    if (this.watches.size < this.env.MCP_MAX_UPSTREAM_LISTENERS) return true;
    this.logger.warn(
      { orgId, integration, limit: this.env.MCP_MAX_UPSTREAM_LISTENERS },
      `MCP upstream listener limit reached; ${meanwhile}`,
    );
    return false;
  }
}

export function watchKey(orgId: string, server: { integration: string; url: string }, userId: string): string {
  return `${orgId}\u0000${server.integration}\u0000${server.url}\u0000${userId}`;
}
