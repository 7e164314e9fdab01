import { errorFromResponse, type GatewayError, GatewayNetworkError } from './errors.js';

/** Node's global fetch, or anything with its signature (a test double, undici's, a proxy's). */
export type Fetch = (input: string | URL, init?: RequestInit) => Promise<Response>;

export interface TransportOptions {
  /** The gateway's base URL, e.g. `https://gateway.example` (paths start at `/v1`). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer …`: an application API key or the operator token. */
  token: string;
  /** Defaults to the global fetch (Node 20+). */
  fetch?: Fetch;
  /** Retries after the first attempt, for requests that are safe to repeat. Default 3; 0 turns retries off. */
  maxRetries?: number;
  /** First backoff step; doubles each attempt, with full jitter. Default 200 ms. */
  retryBaseDelayMs?: number;
  /** Cap of one backoff step. Default 10 s. */
  retryMaxDelayMs?: number;
  /**
   * A Retry-After longer than this is not waited for: the error is thrown at once, with
   * `retryAfterSeconds`, so the caller decides (a 1-hour wait inside a request helps nobody).
   * Default 60 s.
   */
  maxRetryAfterMs?: number;
  /** Per attempt. Default 30 s. */
  timeoutMs?: number;
  /** Sent as User-Agent, after the SDK's own. */
  userAgent?: string;
  /** Injected in tests: how to wait, and the jitter source. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  /** The clock an HTTP-date Retry-After is measured against. Default Date.now. */
  now?: () => number;
}

export interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Already encoded, e.g. `/v1/connections/${encodeURIComponent(id)}`. */
  path: string;
  query?: Record<string, string | number | undefined>;
  /** JSON body. */
  json?: unknown;
  /** A body that is not JSON (an export upload), with its content type. */
  body?: { content: () => NonNullable<RequestInit['body']>; contentType: string };
  /**
   * Whether repeating the request cannot do anything twice. GETs are; a POST only when the
   * route says so (the API has no Idempotency-Key header yet). Only these are retried.
   */
  idempotent?: boolean;
}

/** Statuses that mean "not now", never "not this": the only ones worth asking again. */
const RETRYABLE = new Set([429, 503]);

const SDK_AGENT = 'context-gateway-node/0.1.0';

/** Retry-After as seconds: either delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - now) / 1000));
}

/**
 * The one place requests are made: auth header, JSON in and out, problem+json into typed
 * errors, and retries with exponential backoff and full jitter on 429/503 and network
 * failures, for idempotent requests only, honouring Retry-After.
 */
export class Transport {
  private readonly baseUrl: string;
  private readonly fetch: Fetch;
  private readonly maxRetries: number;
  private readonly baseDelay: number;
  private readonly maxDelay: number;
  private readonly maxRetryAfter: number;
  private readonly timeoutMs: number;
  private readonly userAgent: string;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly now: () => number;

  constructor(private readonly options: TransportOptions) {
    if (!options.token) throw new TypeError('Context Gateway: a token (API key or operator token) is required');
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.maxRetries = options.maxRetries ?? 3;
    this.baseDelay = options.retryBaseDelayMs ?? 200;
    this.maxDelay = options.retryMaxDelayMs ?? 10_000;
    this.maxRetryAfter = options.maxRetryAfterMs ?? 60_000;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.userAgent = options.userAgent ? `${SDK_AGENT} ${options.userAgent}` : SDK_AGENT;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
  }

  async request<T>(spec: RequestSpec): Promise<T> {
    const url = new URL(this.baseUrl + spec.path);
    for (const [name, value] of Object.entries(spec.query ?? {}))
      if (value !== undefined) url.searchParams.set(name, String(value));
    const idempotent = spec.idempotent ?? spec.method === 'GET';
    for (let attempt = 0; ; attempt++) {
      const retriesLeft = idempotent && attempt < this.maxRetries;
      let response: Response;
      try {
        response = await this.fetch(url, this.init(spec));
      } catch (error) {
        if (!retriesLeft) throw new GatewayNetworkError(`cannot reach ${this.baseUrl}`, { cause: error });
        await this.sleep(this.backoff(attempt));
        continue;
      }
      const text = await response.text();
      if (response.ok) return (text ? JSON.parse(text) : undefined) as T;
      const error = errorFromResponse(
        response.status,
        text,
        parseRetryAfter(response.headers.get('retry-after'), this.now()),
      );
      if (!retriesLeft || !RETRYABLE.has(response.status)) throw error;
      const wait = this.waitFor(error, attempt);
      if (wait === undefined) throw error;
      await this.sleep(wait);
    }
  }

  private init(spec: RequestSpec): RequestInit {
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.options.token}`,
      accept: 'application/json, application/problem+json',
      'user-agent': this.userAgent,
    };
    let body: RequestInit['body'];
    if (spec.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(spec.json);
    } else if (spec.body) {
      headers['content-type'] = spec.body.contentType;
      body = spec.body.content();
    }
    return {
      method: spec.method,
      headers,
      signal: AbortSignal.timeout(this.timeoutMs),
      ...(body === undefined ? {} : { body }),
      // A stream body needs half duplex in Node's fetch (undici).
      ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
    };
  }

  /** Full jitter (AWS architecture blog): a random wait in [0, min(cap, base·2^attempt)). */
  private backoff(attempt: number): number {
    return Math.floor(this.random() * Math.min(this.maxDelay, this.baseDelay * 2 ** attempt));
  }

  /** The gateway's Retry-After wins over our backoff; undefined: it asked for longer than we wait. */
  private waitFor(error: GatewayError, attempt: number): number | undefined {
    if (error.retryAfterSeconds === undefined) return this.backoff(attempt);
    const ms = error.retryAfterSeconds * 1000;
    return ms > this.maxRetryAfter ? undefined : ms;
  }
}
