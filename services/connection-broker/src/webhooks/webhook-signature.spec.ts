import { describe, expect, it } from '@jest/globals';

import { formatSecret, signature } from './webhook-signature.js';

describe('Standard Webhooks signatures', () => {
  // The specification's own example (standard-webhooks/standard-webhooks, spec/standard-webhooks.md).
  it('matches the specification test vector', () => {
    const key = Buffer.from('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'base64');
    const body = Buffer.from('{"test": 2432232314}', 'utf8');
    expect(signature(key, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, body)).toBe(
      'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    );
    expect(formatSecret(key)).toBe('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
  });
});
