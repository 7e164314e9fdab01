import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * GitHub signs each webhook delivery: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the
 * raw body>` with the hook's secret. Verified over the exact bytes received, in constant time.
 */
export function verifyGithubSignature(secret: string, rawBody: Uint8Array, header: string | undefined): boolean {
  if (!header || !header.startsWith('sha256=')) return false;
  const given = Buffer.from(header.slice('sha256='.length), 'hex');
  const expected = createHmac('sha256', secret).update(rawBody).digest();
  // Buffer.from(hex) drops what is not hex; a short or malformed value fails the length check.
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export function signGithubPayload(secret: string, rawBody: Uint8Array | string): string {
  return `sha256=${createHmac('sha256', secret).update(rawBody).digest('hex')}`;
}
