import { describe, expect, it } from '@jest/globals';

import { canonicalJson, type JsonValue } from './canonical-json.js';
import { rootHash } from './compact-tree.js';
import { leafHash } from './hash.js';
import { canonicalEntryBytes, decodeEntryBytes, GENESIS_PREV_HASH, LogWriter } from './log-entry.js';

describe('canonical JSON (RFC 8785)', () => {
  it('sorts keys by UTF-16 code unit and drops whitespace, so equal values give equal bytes', () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'x'], é: 1, Z: { y: 2.5, x: -0 } })).toBe(
      '{"Z":{"x":0,"y":2.5},"a":[true,null,"x"],"b":1,"é":1}',
    );
    expect(canonicalJson({ z: 1, a: 2 })).toBe(canonicalJson({ a: 2, z: 1 }));
  });

  it('orders keys as RFC 8785 §3.2.3 does, array-index keys and surrogate pairs included', () => {
    // The RFC's own example: "1" is a key JavaScript would otherwise enumerate first.
    const rfc = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    expect(canonicalJson(rfc)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
    expect(canonicalJson({ a: [{ '10': 1, '9': 2, b: { z: 1, y: 2 } }] })).toBe(
      '{"a":[{"10":1,"9":2,"b":{"y":2,"z":1}}]}',
    );
    // Keys that only look numeric sort as strings on the fast path.
    expect(canonicalJson({ '01': 1, '1.5': 2, '-1': 3 })).toBe('{"-1":3,"01":1,"1.5":2}');
    expect(canonicalJson([1e21, 0.1, -0, 'x', { b: undefined, a: 1 }])).toBe('[1e+21,0.1,0,"x",{"a":1}]');
    // A "__proto__" key (as JSON.parse makes it) is data like any other.
    expect(canonicalJson(JSON.parse('{"b":1,"__proto__":{"x":2}}'))).toBe('{"__proto__":{"x":2},"b":1}');
  });

  it('refuses values whose JSON form is ambiguous', () => {
    expect(() => canonicalJson([undefined])).toThrow('undefined');
    // Objects with array-index keys take the other serializer: the same checks apply.
    expect(() => canonicalJson({ '0': 1, n: Number.NaN })).toThrow('NaN');
    expect(() => canonicalJson({ '0': new Date(0) })).toThrow('non-plain object');
    expect(() => canonicalJson({ f: () => 1 })).toThrow('function');
    expect(() => canonicalJson({ n: Number.NaN })).toThrow('NaN');
    expect(() => canonicalJson({ d: new Date(0) })).toThrow('non-plain object');
    expect(() => canonicalJson({ b: 1n })).toThrow('bigint');
  });
});

describe('log entries', () => {
  const entry = {
    index: 3,
    eventId: 'evt-3',
    prevLeafHash: leafHash(Buffer.from('p')),
    event: { action: 'grant.revoked', by: 'u1' },
  };

  it('encode index, event id, predecessor hash and event as documented', () => {
    const bytes = canonicalEntryBytes(entry);
    expect(bytes.toString()).toBe(
      `{"event":{"action":"grant.revoked","by":"u1"},"eventId":"evt-3","index":3,"prev":"${entry.prevLeafHash.toString('hex')}","v":1}`,
    );
    expect(decodeEntryBytes(bytes)).toEqual(entry);
  });

  it('are exactly the canonical JSON of the documented body, whatever the event id and event hold', () => {
    const prevLeafHash = new Uint8Array(leafHash(Buffer.from('q')));
    for (const [eventId, event] of [
      ['evt "quoted" \\ é 😀', { '2': 'two', z: [1, { b: null, a: 'x' }], a: -0.5 }],
      ['e', 'just a string'],
      ['e', []],
    ] satisfies [string, JsonValue][]) {
      const body = {
        v: 1,
        index: 9_007_199_254_740_991,
        eventId,
        prev: Buffer.from(prevLeafHash).toString('hex'),
        event,
      };
      const bytes = canonicalEntryBytes({ index: body.index, eventId, prevLeafHash, event });
      expect(bytes.toString('utf8')).toBe(canonicalJson(body));
      expect(decodeEntryBytes(bytes)?.eventId).toBe(eventId);
    }
  });

  it('refuse to decode bytes that are valid JSON but not the canonical encoding', () => {
    const bytes = canonicalEntryBytes(entry).toString();
    expect(decodeEntryBytes(Buffer.from(bytes.replace('"by":"u1"', '"by": "u1"')))).toBeUndefined();
    expect(decodeEntryBytes(Buffer.from(bytes.replace('"v":1', '"v":1,"x":0')))).toBeUndefined();
    expect(decodeEntryBytes(Buffer.from('not json'))).toBeUndefined();
  });

  it('chain each entry to its predecessor and keep the tree root in step', () => {
    const writer = LogWriter.empty();
    const appended = ['a', 'b', 'c'].map((id) => writer.append(id, { id }));
    expect(decodeEntryBytes(appended[0]!.canonicalBytes)?.prevLeafHash).toEqual(GENESIS_PREV_HASH);
    expect(decodeEntryBytes(appended[2]!.canonicalBytes)?.prevLeafHash).toEqual(appended[1]!.leafHash);
    expect(writer.root()).toEqual(rootHash(appended.map((a) => a.leafHash)));
    for (const a of appended) expect(a.leafHash).toEqual(leafHash(a.canonicalBytes));
  });

  it('resume from a snapshot and the last leaf hash into the same log', () => {
    const whole = LogWriter.empty();
    const first = [1, 2, 3, 4, 5].map((n) => whole.append(`e${n}`, n));
    const resumed = LogWriter.resume(whole.snapshot(), first[4]!.leafHash);
    expect(resumed.append('e6', 6)).toEqual(whole.append('e6', 6));
    expect(resumed.root()).toEqual(whole.root());
    expect(() => LogWriter.resume(whole.snapshot(), undefined)).toThrow('last leaf hash');
  });

  it('chain from a last leaf hash that is a view into a larger buffer, and refuse a short one', () => {
    const whole = LogWriter.empty();
    const last = [1, 2].map((n) => whole.append(`e${n}`, n))[1]!.leafHash;
    const view = Buffer.concat([Buffer.from('padding'), last, Buffer.from('tail')]).subarray(7, 7 + last.length);
    expect(LogWriter.resume(whole.snapshot(), view).append('e3', 3)).toEqual(whole.append('e3', 3));
    expect(() => canonicalEntryBytes({ ...entry, prevLeafHash: last.subarray(1) })).toThrow('prevLeafHash');
  });
});
