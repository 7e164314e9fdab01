import { createHmac } from 'node:crypto';

import { describe, expect, it } from '@jest/globals';

import { Webhook, WebhookVerificationError } from './webhooks.js';

// The example in the Standard Webhooks specification and its reference libraries' tests
// (also Svix's docs); recomputed here with node:crypto so a typo in it cannot hide a bug.
const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  payload: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};
const at = (seconds: number) => () => seconds * 1000;

const headers = (signature: string, overrides: Record<string, string> = {}) => ({
  'webhook-id': VECTOR.id,
  'webhook-timestamp': String(VECTOR.timestamp),
  'webhook-signature': signature,
  ...overrides,
});

const refusal = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    if (error instanceof WebhookVerificationError) return error.reason;
    throw error;
  }
  return 'accepted';
};

describe('Webhook (Standard Webhooks)', () => {
  const hook = new Webhook(VECTOR.secret, { now: at(VECTOR.timestamp) });

  it('signs and verifies the specification example', () => {
    const key = Buffer.from(VECTOR.secret.slice('whsec_'.length), 'base64');
    const mac = createHmac('sha256', key).update(`${VECTOR.id}.${VECTOR.timestamp}.${VECTOR.payload}`).digest('base64');
    expect(`v1,${mac}`).toBe(VECTOR.signature);
    expect(hook.sign(VECTOR.id, VECTOR.timestamp, VECTOR.payload)).toBe(VECTOR.signature);
    expect(hook.verify(VECTOR.payload, headers(VECTOR.signature))).toEqual({ test: 2432232314 });
  });

  it('accepts the raw body as bytes, headers in any case or as fetch Headers', () => {
    const bytes = Buffer.from(VECTOR.payload);
    const upper = {
      'Webhook-Id': VECTOR.id,
      'Webhook-Timestamp': String(VECTOR.timestamp),
      'Webhook-Signature': VECTOR.signature,
    };
    expect(hook.verify(bytes, upper)).toEqual({ test: 2432232314 });
    expect(hook.verify(bytes, new Headers(headers(VECTOR.signature)))).toEqual({ test: 2432232314 });
  });

  it('accepts any one of several signatures (a secret being rotated)', () => {
    const other = new Webhook(Buffer.from('another secret, 32 bytes long...')).sign(
      VECTOR.id,
      VECTOR.timestamp,
      VECTOR.payload,
    );
    expect(refusal(() => hook.verify(VECTOR.payload, headers(`${other} v1a,xyz ${VECTOR.signature}`)))).toBe(
      'accepted',
    );
    expect(refusal(() => hook.verify(VECTOR.payload, headers(other)))).toBe('invalid_signature');
  });

  it('refuses a body changed by one byte, or parsed and serialized again', () => {
    expect(refusal(() => hook.verify('{"test": 2432232315}', headers(VECTOR.signature)))).toBe('invalid_signature');
    expect(refusal(() => hook.verify(JSON.stringify({ test: 2432232314 }), headers(VECTOR.signature)))).toBe(
      'invalid_signature',
    );
  });

  it('refuses a signature moved to another message id or timestamp', () => {
    expect(refusal(() => hook.verify(VECTOR.payload, headers(VECTOR.signature, { 'webhook-id': 'msg_other' })))).toBe(
      'invalid_signature',
    );
    const later = new Webhook(VECTOR.secret, { now: at(VECTOR.timestamp + 1) });
    expect(
      refusal(() =>
        later.verify(VECTOR.payload, headers(VECTOR.signature, { 'webhook-timestamp': String(VECTOR.timestamp + 1) })),
      ),
    ).toBe('invalid_signature');
  });

  it('refuses the right signature under the wrong secret, an unknown version, or garbage', () => {
    const wrong = new Webhook('whsec_' + Buffer.from('not the secret').toString('base64'), {
      now: at(VECTOR.timestamp),
    });
    expect(refusal(() => wrong.verify(VECTOR.payload, headers(VECTOR.signature)))).toBe('invalid_signature');
    expect(refusal(() => hook.verify(VECTOR.payload, headers(VECTOR.signature.replace('v1,', 'v2,'))))).toBe(
      'invalid_signature',
    );
    expect(refusal(() => hook.verify(VECTOR.payload, headers('v1,')))).toBe('invalid_signature');
    expect(refusal(() => hook.verify(VECTOR.payload, headers('nonsense')))).toBe('invalid_signature');
  });

  it('refuses a delivery outside five minutes either way, and accepts one just inside', () => {
    const check = (now: number) =>
      refusal(() => new Webhook(VECTOR.secret, { now: at(now) }).verify(VECTOR.payload, headers(VECTOR.signature)));
    expect(check(VECTOR.timestamp + 300)).toBe('accepted');
    expect(check(VECTOR.timestamp - 300)).toBe('accepted');
    expect(check(VECTOR.timestamp + 301)).toBe('timestamp_too_old');
    expect(check(VECTOR.timestamp - 301)).toBe('timestamp_too_new');
  });

  it('refuses missing headers and a timestamp that is not Unix seconds', () => {
    expect(refusal(() => hook.verify(VECTOR.payload, { 'webhook-id': VECTOR.id }))).toBe('missing_headers');
    expect(
      refusal(() =>
        hook.verify(VECTOR.payload, headers(VECTOR.signature, { 'webhook-timestamp': '2021-02-25T15:02:10Z' })),
      ),
    ).toBe('invalid_timestamp');
  });

  it('refuses an empty secret instead of accepting what anyone could sign', () => {
    expect(() => new Webhook('whsec_')).toThrow(TypeError);
  });
});
