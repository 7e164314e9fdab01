import { describe, expect, it } from '@jest/globals';
import { headers, MsgHdrsImpl } from '@nats-io/transport-node';

import { FixedHeaders, Header, replyHeaders, ReplyStatus } from './headers.js';

/** What nats.js puts on the wire for a fresh headers object with these entries. */
function freshBytes(entries: Record<string, string>): Uint8Array {
  const h = headers();
  for (const [key, value] of Object.entries(entries)) h.set(key, value);
  return (h as MsgHdrsImpl).encode();
}

describe('FixedHeaders', () => {
  it('encodes byte for byte what a fresh headers() with the same entries encodes, every time', () => {
    const entries = { [Header.status]: ReplyStatus.ok, 'x-other': 'two words' };
    const fixed = new FixedHeaders(entries);
    expect(Buffer.from(fixed.encode())).toEqual(Buffer.from(freshBytes(entries)));
    expect(fixed.encode()).toBe(fixed.encode());
    expect(MsgHdrsImpl.decode(fixed.encode()).get('x-other')).toBe('two words');
  });

  it('reads like any headers object', () => {
    const fixed = new FixedHeaders({ [Header.status]: ReplyStatus.error });
    expect(fixed.get(Header.status)).toBe('error');
    expect(fixed.has(Header.status)).toBe(true);
    expect(fixed.keys()).toEqual([Header.status]);
  });

  it('refuses changes: one object goes out with every reply of its status', () => {
    const fixed = replyHeaders.ok;
    expect(() => fixed.set(Header.status, 'error')).toThrow(TypeError);
    expect(() => fixed.append('x-more', '1')).toThrow(TypeError);
    expect(() => fixed.delete(Header.status)).toThrow(TypeError);
    expect(Buffer.from(fixed.encode())).toEqual(Buffer.from(freshBytes({ [Header.status]: 'ok' })));
  });

  it('has one set per reply status', () => {
    expect(MsgHdrsImpl.decode(replyHeaders.ok.encode()).get(Header.status)).toBe(ReplyStatus.ok);
    expect(MsgHdrsImpl.decode(replyHeaders.error.encode()).get(Header.status)).toBe(ReplyStatus.error);
  });
});
