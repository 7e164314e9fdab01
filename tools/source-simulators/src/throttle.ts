import { type Clock, systemClock } from '@context-gateway/clock';

/**
 * A rate-limit storm, switched on through the control API: the resource API answers
 * with the source's rate-limit response (429/403 + Retry-After) for every Nth request,
 * for T seconds, or both.
 */
export interface StormConfig {
  /** Throttle every Nth resource request (1 or unset = every request). */
  everyNth?: number;
  /** End the storm by itself after this many seconds (unset = until stopped). */
  durationSeconds?: number;
  /** The Retry-After value sent, in seconds. */
  retryAfterSeconds: number;
  /** Status to answer with (GitHub: 403 or 429, default 403; Spotify and demo: 429). */
  status?: number;
  /** GitHub only: `secondary` (Retry-After) or `primary` (X-RateLimit-Remaining: 0 and Reset). */
  kind?: 'secondary' | 'primary';
}

export class Throttle {
  private storm: { config: StormConfig; endsAt: number; seen: number } | undefined;

  constructor(private readonly clock: Clock = systemClock) {}

  start(config: StormConfig): void {
    this.storm = {
      config,
      endsAt: config.durationSeconds ? this.clock.now() + config.durationSeconds * 1000 : Infinity,
      seen: 0,
    };
  }

  stop(): void {
    this.storm = undefined;
  }

  /** The storm that refuses this request, if any. */
  check(): StormConfig | undefined {
    const storm = this.storm;
    if (!storm) return undefined;
    if (this.clock.now() > storm.endsAt) {
      this.storm = undefined;
      return undefined;
    }
    storm.seen++;
    const n = storm.config.everyNth ?? 1;
    return storm.seen % n === 0 ? storm.config : undefined;
  }

  describe(): (StormConfig & { active: true }) | { active: false } {
    return this.storm ? { ...this.storm.config, active: true } : { active: false };
  }
}
