/** What a simulator has done, read by tests and benchmarks through GET /_sim/counters. */
export interface Counters {
  /** Resource API requests received (every status, including throttled and 304). */
  apiRequests: number;
  /** Resource API requests answered 304 Not Modified. */
  notModified: number;
  /** Resource API requests refused by a storm or the primary rate limit. */
  throttled: number;
  /** Resource API requests refused with 401 (missing, invalid, revoked or expired token). */
  unauthorized: number;
  codesIssued: number;
  /** Token sets issued from an authorization code. */
  tokensIssued: number;
  /** Successful refresh-token grants. */
  tokensRefreshed: number;
  /** Access and refresh tokens revoked (explicitly, by grant deletion, replay or reuse). */
  tokensRevoked: number;
  tokenRequests: number;
  webhooksDelivered: number;
  webhooksFailed: number;
  /** Resource API requests per route pattern, e.g. `GET /user/repos`. */
  byRoute: Record<string, number>;
}

export function newCounters(): Counters {
  return {
    apiRequests: 0,
    notModified: 0,
    throttled: 0,
    unauthorized: 0,
    codesIssued: 0,
    tokensIssued: 0,
    tokensRefreshed: 0,
    tokensRevoked: 0,
    tokenRequests: 0,
    webhooksDelivered: 0,
    webhooksFailed: 0,
    byRoute: {},
  };
}
