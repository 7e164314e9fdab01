import { Clock } from '@context-gateway/clock';
import type { LoggingLevel } from '@modelcontextprotocol/server';
import { Injectable } from '@nestjs/common';

import type { StreamCaller } from './mcp-subscribers.js';

/** The spec's levels (RFC 5424), least severe first. */
const LEVELS: readonly LoggingLevel[] = [
  'debug',
  'info',
  'notice',
  'warning',
  'error',
  'critical',
  'alert',
  'emergency',
];

/** Whether `level` is at or above `threshold`. */
export function atLeast(level: LoggingLevel, threshold: LoggingLevel): boolean {
  return LEVELS.indexOf(level) >= LEVELS.indexOf(threshold);
}

/** What an upstream's `notifications/message` carries (the SDK client validated it). */
interface UpstreamLogMessage {
  level: LoggingLevel;
  logger?: string | undefined;
  data?: unknown;
}

/** One request's relay of its upstream log messages to the agent. */
export interface LogRelay {
  /** The least severe level the agent takes: what the upstream is asked for. */
  level: LoggingLevel;
  deliver(message: UpstreamLogMessage): void;
}

/**
 * At most this many log messages of one request reach the agent (the spec asks servers to
 * rate-limit them); past it, one warning of the gateway's own says that more were dropped.
 */
const MAX_LOG_MESSAGES_PER_REQUEST = 100;

/**
 * A relay for one request to `integration`, for an agent that takes messages at `threshold`
 * and above (undefined: none, and the upstream is asked for none). Each message goes on as the
 * upstream wrote it but for `logger`, which names the integration first (`github`, or
 * `github/<the upstream's logger>`), so no server can pass its messages off as another's
 * or as the gateway's. Nothing of a message is ever written to the gateway's own logs.
 */
export function logRelay(options: {
  integration: string;
  threshold: LoggingLevel | undefined;
  notify: (message: { level: LoggingLevel; logger: string; data: unknown }) => void;
  max?: number;
}): LogRelay | undefined {
  const { integration, threshold, notify, max = MAX_LOG_MESSAGES_PER_REQUEST } = options;
  if (threshold === undefined) return undefined;
  let passed = 0;
  let warned = false;
  return {
    level: threshold,
    deliver: (message) => {
      if (!atLeast(message.level, threshold)) return;
      if (passed >= max) {
        if (!warned && atLeast('warning', threshold))
          notify({
            level: 'warning',
            logger: 'context-gateway',
            data: `${integration} sent more than ${max} log messages for this request; the rest were dropped`,
          });
        warned = true;
        return;
      }
      passed++;
      notify({
        level: message.level,
        logger: message.logger ? `${integration}/${message.logger}` : integration,
        data: message.data,
      });
    },
  };
}

/** How long a 2025-11-25 level set with `logging/setLevel` is remembered after its last use. */
const LEVEL_KEEP_MS = 24 * 60 * 60_000;
/** Callers one gateway remembers a level for (the least recently used is forgotten first). */
const MAX_LEVELS = 50_000;

/**
 * The levels 2025-11-25 clients set with `logging/setLevel`. The spec ties the level to the
 * session; the gateway keeps no sessions, so it is remembered per caller — this application
 * acting for this person, whatever its token — at this replica, for LEVEL_KEEP_MS after its
 * last use and for at most MAX_LEVELS callers. A caller with no level remembered gets every
 * message (what the SDK's own servers send a 2025-11-25 client that never set one).
 */
@Injectable()
export class McpLogLevels {
  private readonly levels = new Map<string, { level: LoggingLevel; usedAt: number }>();

  constructor(private readonly clock: Clock) {}

  set(caller: StreamCaller, level: LoggingLevel): void {
    const key = levelKey(caller);
    this.levels.delete(key);
    this.levels.set(key, { level, usedAt: this.clock.now() });
    if (this.levels.size > MAX_LEVELS) {
      const oldest = this.levels.keys().next().value;
      if (oldest !== undefined) this.levels.delete(oldest);
    }
  }

  /** The caller's level, or undefined when none is remembered (set long ago, or never here). */
  get(caller: StreamCaller): LoggingLevel | undefined {
    const key = levelKey(caller);
    const kept = this.levels.get(key);
    if (!kept) return undefined;
    this.levels.delete(key);
    if (kept.usedAt + LEVEL_KEEP_MS <= this.clock.now()) return undefined;
    kept.usedAt = this.clock.now();
    this.levels.set(key, kept);
    return kept.level;
  }
}

function levelKey(caller: StreamCaller): string {
  return `${caller.orgId}\u0000${caller.applicationId}\u0000${caller.onBehalfOf}`;
}
