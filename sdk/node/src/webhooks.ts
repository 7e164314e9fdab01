import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Webhook deliveries signed per the Standard Webhooks specification
 * (https://www.standardwebhooks.com): headers `webhook-id`, `webhook-timestamp` (Unix
 * seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, several
 * space-separated while a secret rotates), the secret given as `whsec_<base64>`.
 */

/** Why a delivery was refused, so a receiver can log it without echoing the body. */
export type WebhookFailure =
  'missing_headers' | 'invalid_timestamp' | 'timestamp_too_old' | 'timestamp_too_new' | 'invalid_signature';

export class WebhookVerificationError extends Error {
  override readonly name = 'WebhookVerificationError';
  constructor(readonly reason: WebhookFailure) {
    super(`webhook refused: ${reason}`);
  }
}

/** Node's IncomingHttpHeaders, a fetch Headers, or a plain object; names are case-insensitive. */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

export interface WebhookOptions {
  /** How far a delivery's timestamp may be from now, either way. Default 300 s (the spec's). */
  toleranceSeconds?: number;
  /** The clock the timestamp is checked against. Default Date.now. */
  now?: () => number;
}

const PREFIX = 'whsec_';

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : headers[key];
  return Array.isArray(value) ? value.join(' ') : value;
}

export class Webhook {
  private readonly key: Buffer;
  private readonly tolerance: number;
  private readonly now: () => number;

  constructor(secret: string | Uint8Array, options: WebhookOptions = {}) {
    this.key =
      typeof secret === 'string'
        ? Buffer.from(secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret, 'base64')
        : Buffer.from(secret);
    // A secret that decodes to nothing would make every signature checkable by anyone.
    if (this.key.length === 0) throw new TypeError('webhook secret is empty or not base64');
    this.tolerance = options.toleranceSeconds ?? 300;
    this.now = options.now ?? Date.now;
  }

  /** `v1,<signature>` for a delivery; what a sender puts in `webhook-signature`. */
  sign(id: string, timestampSeconds: number, payload: string | Uint8Array): string {
    return `v1,${this.mac(id, timestampSeconds, payload).toString('base64')}`;
  }

  /**
   * Checks a delivery and returns its body parsed as JSON. `payload` must be the exact bytes
   * received (the raw body), not JSON parsed and serialized again: that changes the bytes.
   * Throws WebhookVerificationError; never says which signature was expected.
   */
  verify(payload: string | Uint8Array, headers: WebhookHeaders): unknown {
    const id = header(headers, 'webhook-id');
    const timestamp = header(headers, 'webhook-timestamp');
    const signatures = header(headers, 'webhook-signature');
    if (!id || !timestamp || !signatures) throw new WebhookVerificationError('missing_headers');
    if (!/^\d{1,12}$/.test(timestamp)) throw new WebhookVerificationError('invalid_timestamp');
    const seconds = Number(timestamp);
    const nowSeconds = Math.floor(this.now() / 1000);
    // Both ways: an old delivery may be a replay, one from the future a clock an attacker chose.
    if (seconds < nowSeconds - this.tolerance) throw new WebhookVerificationError('timestamp_too_old');
    if (seconds > nowSeconds + this.tolerance) throw new WebhookVerificationError('timestamp_too_new');

    const expected = this.mac(id, seconds, payload);
    let match = false;
    for (const entry of signatures.split(' ')) {
      const comma = entry.indexOf(',');
      if (comma < 0 || entry.slice(0, comma) !== 'v1') continue;
      const given = Buffer.from(entry.slice(comma + 1), 'base64');
      // Compared in constant time; only the length (public: always 32) can short-circuit.
      if (given.length === expected.length && timingSafeEqual(given, expected)) match = true;
    }
    if (!match) throw new WebhookVerificationError('invalid_signature');
    const text = typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8');
    return JSON.parse(text) as unknown;
  }

  private mac(id: string, timestampSeconds: number, payload: string | Uint8Array): Buffer {
    return createHmac('sha256', this.key)
      .update(`${id}.${timestampSeconds}.`)
      .update(typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload)
      .digest();
  }
}
