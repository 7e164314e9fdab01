import { type Clock, systemClock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';

import type { AccessTokenSource } from './connector.js';
import { parseJsonBody } from './json-body.js';
import { type SourceAnswer, sourceGet } from './source-get.js';

export interface SourceHttpOptions {
  /** Attempts per request on 429 / secondary rate limits / 5xx before giving up. */
  maxAttempts?: number;
  /** Longest single wait we accept from Retry-After or X-RateLimit-Reset; longer → `rate_limited`, the job retries later. */
  maxWaitMs?: number;
  /** Back-off base for 5xx and network errors: base * 2^attempt with full jitter. */
  backoffBaseMs?: number;
  /** Per-request timeout. */
  timeoutMs?: number;
  /** Extra headers for every request (API version pins, Accept). */
  headers?: Record<string, string>;
  /** Where "now" comes from when comparing it with the source's rate-limit reset and Retry-After times. */
  clock?: Clock;
  /** The Authorization scheme the credential goes with (default `Bearer`; ListenBrainz wants `Token`). */
  authScheme?: string;
}

export interface SourceResponse<T> {
  status: 200 | 304;
  body: T | undefined;
  headers: Headers;
  etag: string | undefined;
}

/**
 * An answer whose body has arrived in full but is not parsed yet (`json()` parses it, once).
 * A walk that learns the next page from the headers asks for it first and parses this one
 * while the source answers: parsing a GitHub page (~500 KB of JSON) is most of a worker's
 * CPU per page, and the source stays asked one request at a time.
 */
export interface ReceivedResponse<T> {
  status: 200 | 304;
  headers: Headers;
  etag: string | undefined;
  /** The parsed body; undefined for a 304. Throws `source_error` when the body is not JSON. */
  json(): T | undefined;
}

/** Waits `ms`; an abort ends the wait early and rejects with the signal's reason. */
async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted();
  await new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
  signal?.throwIfAborted();
}

/**
 * The HTTP client every connector uses: bearer token, conditional requests, and the
 * sources' documented throttling — 429 with Retry-After (Spotify, GitHub secondary),
 * 403 with X-RateLimit-Remaining: 0 until X-RateLimit-Reset (GitHub primary), 403 with
 * Retry-After (GitHub secondary), 429 with X-RateLimit-Reset-In seconds (ListenBrainz) —
 * and a proactive pause when the budget is spent. A 401
 * asks the token source for a refreshed token once, then the request continues.
 */
export class SourceHttp {
  private readonly maxAttempts: number;
  private readonly maxWaitMs: number;
  private readonly backoffBaseMs: number;
  private readonly timeoutMs: number;
  private readonly clock: Clock;
  /** Epoch ms before which the primary budget is spent (learned from headers). */
  private pausedUntil = 0;
  /** Requests made, and of those answered 304 (cheap on GitHub: they do not count). */
  readonly stats = { requests: 0, notModified: 0, throttled: 0, refreshed: 0 };

  constructor(
    private readonly baseUrl: string,
    private readonly tokens: AccessTokenSource,
    private readonly options: SourceHttpOptions = {},
    private readonly signal?: AbortSignal,
  ) {
    this.maxAttempts = options.maxAttempts ?? 10;
    this.maxWaitMs = options.maxWaitMs ?? 60_000;
    this.backoffBaseMs = options.backoffBaseMs ?? 250;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.clock = options.clock ?? systemClock;
  }

  /**
   * Resolves a path or an absolute URL (Link / `next` values are absolute). An absolute URL
   * must stay on the source's own origin: the user's token goes with every request, and a
   * pagination link pointing elsewhere would hand it to another host.
   */
  url(pathOrUrl: string): string {
    if (/^https?:\/\//i.test(pathOrUrl)) {
      if (new URL(pathOrUrl).origin !== new URL(this.baseUrl).origin) {
        throw new AppError('source_error', 'The source sent a link to another origin; it was not followed');
      }
      return pathOrUrl;
    }
    return this.baseUrl.replace(/\/$/, '') + (pathOrUrl.startsWith('/') ? pathOrUrl : `/${pathOrUrl}`);
  }

  /** `accept` overrides the Accept header for this request (a media type that adds fields, e.g. GitHub's star+json). */
  async get<T>(pathOrUrl: string, opts: { etag?: string; accept?: string } = {}): Promise<SourceResponse<T>> {
    const res = await this.receive<T>(pathOrUrl, opts);
    return { status: res.status, body: res.json(), headers: res.headers, etag: res.etag };
  }

  /** As get(), but resolves once the body has arrived, before it is parsed (see ReceivedResponse). */
  async receive<T>(pathOrUrl: string, opts: { etag?: string; accept?: string } = {}): Promise<ReceivedResponse<T>> {
    const url = this.url(pathOrUrl);
    let token = await this.tokens.current();
    let refreshed = false;
    for (let attempt = 1; ; attempt++) {
      const pause = this.pausedUntil - this.clock.now();
      if (pause > 0) await this.waitOrGiveUp(pause, 'rate limit budget spent');

      const headers: Record<string, string> = {
        accept: 'application/json',
        ...this.options.headers,
        ...(opts.accept ? { accept: opts.accept } : {}),
        authorization: `${this.options.authScheme ?? 'Bearer'} ${token}`,
      };
      if (opts.etag) headers['if-none-match'] = opts.etag;
      let res: SourceAnswer;
      this.stats.requests++;
      try {
        res = await sourceGet(
          url,
          headers,
          this.signal
            ? AbortSignal.any([this.signal, AbortSignal.timeout(this.timeoutMs)])
            : AbortSignal.timeout(this.timeoutMs),
        );
      } catch (error) {
        // An AppError is the source's answer itself (too large, does not decode): asking again gets the same.
        if (this.signal?.aborted || error instanceof AppError) throw error;
        if (attempt >= this.maxAttempts)
          throw new AppError('source_error', `The source did not answer (${new URL(url).pathname})`, [], {
            cause: error,
          });
        await sleep(this.backoff(attempt), this.signal);
        continue;
      }
      this.learnBudget(res.headers);

      if (res.status === 200 || res.status === 304) {
        const etag = res.headers.get('etag') ?? undefined;
        if (res.status === 304) {
          this.stats.notModified++;
          return { status: 304, headers: res.headers, etag: etag ?? opts.etag, json: () => undefined };
        }
        const bytes = res.body;
        let parsed: { body: T } | undefined;
        const path = new URL(url).pathname;
        return {
          status: 200,
          headers: res.headers,
          etag,
          json: () => (parsed ??= { body: parseJson<T>(bytes, path) }).body,
        };
      }

      if (res.status === 401) {
        // One refresh per request: a second 401 with a fresh token is not an expiry.
        if (refreshed) throw new AppError('source_error', 'The source rejected a freshly refreshed token');
        token = await this.tokens.refresh(token);
        refreshed = true;
        this.stats.refreshed++;
        attempt--;
        continue;
      }
      const throttled =
        res.status === 429 ||
        (res.status === 403 && (res.headers.has('retry-after') || res.headers.get('x-ratelimit-remaining') === '0'));
      if (throttled) {
        this.stats.throttled++;
        if (attempt >= this.maxAttempts)
          throw new AppError('rate_limited', 'The source kept throttling; the sync will be retried later');
        await this.waitOrGiveUp(this.throttleWait(res.headers, attempt), 'throttled');
        continue;
      }
      if (res.status >= 500) {
        if (attempt >= this.maxAttempts) throw new AppError('source_error', `The source answered ${res.status}`);
        await sleep(this.backoff(attempt), this.signal);
        continue;
      }
      if (res.status === 404) throw new AppError('not_found', `The source has no ${new URL(url).pathname}`);
      // Not a throttle (checked above): the source refuses this resource to this user.
      if (res.status === 403) throw new AppError('forbidden', `The source refused ${new URL(url).pathname} (403)`);
      throw new AppError('source_error', `The source answered ${res.status} for ${new URL(url).pathname}`);
    }
  }

  /** Full jitter: a crowd of workers throttled together does not come back together. */
  private backoff(attempt: number): number {
    return Math.round(Math.random() * Math.min(this.maxWaitMs, this.backoffBaseMs * 2 ** attempt));
  }

  private throttleWait(headers: Headers, attempt: number): number {
    const retryAfter = headers.get('retry-after');
    if (retryAfter !== null) {
      const seconds = Number(retryAfter);
      const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(retryAfter) - this.clock.now();
      // A little jitter on top of what the source asked for, never less than it asked.
      if (Number.isFinite(ms)) return Math.max(0, ms) + Math.round(Math.random() * 250);
    }
    // ListenBrainz: seconds until the window resets, which (unlike an epoch reset) does not
    // depend on our clock agreeing with the source's.
    const resetIn = resetInMs(headers);
    if (resetIn !== undefined) return resetIn + Math.round(Math.random() * 250);
    const reset = Number(headers.get('x-ratelimit-reset'));
    if (headers.get('x-ratelimit-remaining') === '0' && reset > 0)
      return Math.max(0, reset * 1000 - this.clock.now()) + Math.round(Math.random() * 250);
    // GitHub's secondary limit without a header: at least a minute, per its docs; we back off exponentially.
    return this.backoff(attempt);
  }

  private learnBudget(headers: Headers): void {
    if (headers.get('x-ratelimit-remaining') === '0') {
      const resetIn = resetInMs(headers);
      const reset = Number(headers.get('x-ratelimit-reset'));
      if (resetIn !== undefined) this.pausedUntil = Math.max(this.pausedUntil, this.clock.now() + resetIn);
      else if (reset > 0) this.pausedUntil = Math.max(this.pausedUntil, reset * 1000);
    }
  }

  private async waitOrGiveUp(ms: number, why: string): Promise<void> {
    if (ms > this.maxWaitMs)
      throw new AppError(
        'rate_limited',
        `The source asked us to wait ${Math.ceil(ms / 1000)} s (${why}); the sync will be retried later`,
      );
    await sleep(ms, this.signal);
  }
}

function parseJson<T>(bytes: Buffer, path: string): T {
  try {
    return parseJsonBody(bytes) as T;
  } catch (cause) {
    throw new AppError('source_error', `The source answered ${path} with a body that is not JSON`, [], { cause });
  }
}

/** `X-RateLimit-Reset-In` (seconds, ListenBrainz) in ms; undefined when absent or not a number. */
function resetInMs(headers: Headers): number | undefined {
  const value = headers.get('x-ratelimit-reset-in');
  const seconds = value === null || value.trim() === '' ? Number.NaN : Number(value);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

/**
 * The `rel="next"` target of an RFC 8288 Link header (GitHub pagination). Parsed link by
 * link rather than split on commas: a URL may hold commas (GitHub echoes
 * `affiliation=owner,collaborator` as sent), and so may a quoted parameter.
 */
export function nextLink(link: string | null): string | undefined {
  if (!link) return undefined;
  for (const { url, rels } of parseLinkHeader(link)) if (rels.includes('next')) return url;
  return undefined;
}

/** Every `<url>; param=value; ...` of a Link header, with its `rel` values (lower case). */
export function parseLinkHeader(header: string): { url: string; rels: string[] }[] {
  const links: { url: string; rels: string[] }[] = [];
  let i = 0;
  while (i < header.length) {
    const open = header.indexOf('<', i);
    if (open < 0) break;
    const close = header.indexOf('>', open + 1);
    if (close < 0) break;
    const url = header.slice(open + 1, close);
    // Parameters run to the next comma outside quotes.
    let j = close + 1;
    let quoted = false;
    for (; j < header.length; j++) {
      const c = header[j];
      if (c === '"') quoted = !quoted;
      else if (c === '\\' && quoted) j++;
      else if (c === ',' && !quoted) break;
    }
    const params = header.slice(close + 1, j);
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(params);
    const rels = (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/).filter(Boolean);
    links.push({ url, rels });
    i = j + 1;
  }
  return links;
}
