import { describe, expect, it } from '@jest/globals';
import { pino } from 'pino';

import { isSecretKey, REDACT_PATHS, scrubSecrets, scrubString } from './redaction.js';
import { MemoryDestination } from './test-support.js';

describe('scrubSecrets', () => {
  it('replaces the values of secret-looking keys at any depth and keeps the rest', () => {
    const input = {
      userId: 'u_1',
      password: 'hunter2',
      oauth: { access_token: 'at-1', refresh_token: 'rt-1', id_token: 'it-1', token_type: 'Bearer', expires_in: 3600 },
      client: { client_secret: 'cs-1', clientSecret: 'cs-2', api_key: 'ak-1', apiKey: 'ak-2' },
      pkce: { code_verifier: 'cv-1', challenge: 'ch-1' },
      callback: { code: 'authcode-1', state: 'st-1' },
      list: [{ privateKey: 'pk-1' }, { private_key: 'pk-2' }],
      githubToken: 'gh-1',
      'webhook-secret': 'wh-1',
    };
    const out = scrubSecrets(input);
    expect(out).toEqual({
      userId: 'u_1',
      password: '[redacted]',
      oauth: {
        access_token: '[redacted]',
        refresh_token: '[redacted]',
        id_token: '[redacted]',
        token_type: 'Bearer',
        expires_in: 3600,
      },
      client: { client_secret: '[redacted]', clientSecret: '[redacted]', api_key: '[redacted]', apiKey: '[redacted]' },
      pkce: { code_verifier: '[redacted]', challenge: '[redacted]' },
      callback: { code: '[redacted]', state: 'st-1' },
      list: [{ privateKey: '[redacted]' }, { private_key: '[redacted]' }],
      githubToken: '[redacted]',
      'webhook-secret': '[redacted]',
    });
    // The caller's object is left untouched: scrubbing is a copy.
    expect(input.password).toBe('hunter2');
  });

  it('redacts headers in any casing, whatever the value type', () => {
    const out = scrubSecrets({
      headers: {
        Authorization: 'Bearer abc',
        Cookie: 'sid=1',
        'Set-Cookie': ['a=1', 'b=2'],
        'X-Api-Key': 'k',
        accept: 'json',
      },
    });
    expect(out).toEqual({
      headers: {
        Authorization: '[redacted]',
        Cookie: '[redacted]',
        'Set-Cookie': '[redacted]',
        'X-Api-Key': '[redacted]',
        accept: 'json',
      },
    });
  });

  it('keeps error codes: on errors and on `{ code, message }` replies', () => {
    const err = Object.assign(new Error('grant not found'), { code: 'grant_not_found' });
    expect(scrubSecrets(err)).toMatchObject({ type: 'Error', message: 'grant not found', code: 'grant_not_found' });
    expect(scrubSecrets({ code: 'forbidden', message: 'no' })).toEqual({ code: 'forbidden', message: 'no' });
    expect(scrubSecrets({ statusCode: 401, code: 500 })).toEqual({ statusCode: 401, code: 500 });
  });

  it('serializes errors with scrubbed message, stack, props and cause', () => {
    const cause = new Error('upstream said: Authorization: Bearer upstream-tok');
    const err = new Error('call failed with cg_sk_live_abc123', { cause });
    Object.assign(err, { request: { headers: { authorization: 'Bearer prop-tok' } } });
    const out = scrubSecrets(err) as Record<string, unknown>;
    const text = JSON.stringify(out);
    expect(text).not.toContain('abc123');
    expect(text).not.toContain('upstream-tok');
    expect(text).not.toContain('prop-tok');
    expect(out.message).toBe('call failed with cg_sk_[redacted]');
    expect(out.stack).toEqual(expect.stringContaining('call failed with cg_sk_[redacted]'));
    expect(out.cause).toMatchObject({ message: 'upstream said: Authorization: Bearer [redacted]' });
  });

  it('survives cycles, binary data, maps and bigints', () => {
    const node: Record<string, unknown> = { name: 'a' };
    node.self = node;
    const out = scrubSecrets({
      node,
      key: Buffer.from('0123456789abcdef'),
      m: new Map<string, unknown>([
        ['token', 't'],
        ['ok', 1],
      ]),
      n: 10n,
      when: new Date('2026-01-01T00:00:00Z'),
    });
    expect(out).toEqual({
      node: { name: 'a', self: '[Circular]' },
      key: '[binary 16 bytes]',
      m: { token: '[redacted]', ok: 1 },
      n: '10',
      when: '2026-01-01T00:00:00.000Z',
    });
  });

  it('repeats a shared (non-circular) object instead of calling it circular', () => {
    const shared = { a: 1 };
    expect(scrubSecrets({ x: shared, y: shared })).toEqual({ x: { a: 1 }, y: { a: 1 } });
  });
});

describe('scrubString', () => {
  it.each([
    ['Authorization: Bearer eyJabc.def-ghi', 'Authorization: Bearer [redacted]'],
    ['basic dXNlcjpwYXNz', 'basic [redacted]'],
    ['key cg_sk_9f8e7d-6c_5b is invalid', 'key cg_sk_[redacted] is invalid'],
    ['connect postgres://app:s3cr3t@db:5432/x failed', 'connect postgres://app:[redacted]@db:5432/x failed'],
    ['GET /callback?code=abc&state=xyz', 'GET /callback?code=[redacted]&state=[redacted]'],
    [
      'session cg_ss_AbC-12 and auditor cg_aud_x_9 and ceremony cg_wc_q',
      'session cg_ss_[redacted] and auditor cg_aud_[redacted] and ceremony cg_wc_[redacted]',
    ],
    [
      'secret cg_cs_Zz9-x and initial access cg_iat_Q1_w',
      'secret cg_cs_[redacted] and initial access cg_iat_[redacted]',
    ],
    ['https://x/t?client_id=1&client_secret=shh', 'https://x/t?client_id=1&client_secret=[redacted]'],
    ['jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_nature', 'jwt [redacted]'],
    ['nothing secret here', 'nothing secret here'],
  ])('%s', (input, expected) => {
    expect(scrubString(input)).toBe(expected);
  });
});

describe('isSecretKey', () => {
  it('does not flag ordinary fields', () => {
    for (const key of ['userId', 'token_type', 'expires_in', 'statusCode', 'publicKey', 'state', 'message']) {
      expect(isSecretKey(key)).toBe(false);
    }
  });
});

describe('REDACT_PATHS', () => {
  it('are valid pino redact paths that hide headers and secret fields on their own', () => {
    const dest = new MemoryDestination();
    // A bare pino with only the redact net: proves the paths work without the scrubber.
    const log = pino({ redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, dest);
    log.info({
      req: { headers: { authorization: 'Bearer raw-1', cookie: 'sid=raw-2', host: 'h' } },
      body: { password: 'raw-3', code: 'raw-4' },
      token: 'raw-5',
    });
    expect(dest.raw).not.toMatch(/raw-\d/);
    expect(dest.last()).toMatchObject({ req: { headers: { host: 'h' } } });
  });
});
