import { createHash } from 'node:crypto';

/**
 * A UUID derived from a name (the layout of RFC 9562 version 8): the same name always gives
 * the same job id, which is the job's Nats-Msg-Id, so the stream stores it once.
 */
export function jobIdFor(name: string): string {
  const h = createHash('sha256').update(name).digest();
  h[6] = (h.readUInt8(6) & 0x0f) | 0x80;
  h[8] = (h.readUInt8(8) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}
