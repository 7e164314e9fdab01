import { describe, expect, it } from '@jest/globals';
import { canonicalJson } from './canonical-json.js';
import { GENESIS_PREV_HASH, LogWriter, canonicalEntryBytes, decodeEntryBytes } from './log-entry.js';
import { rootHash } from './compact-tree.js';
import { leafHash } from './hash.js';

describe('canonical JSON (RFC 8785)', () => {
  it('sorts keys by UTF-16 code unit and drops whitespace, so equal values give equal bytes', () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'x'], é: 1, Z: { y: 2.5, x: -0 } })).toBe(
      '{"Z":{"x":0,"y":2.5},"a":[true,null,"x"],"b":1,"é":1}',
    );
    expect(canonicalJson({ z: 1, a: 2 })).toBe(canonicalJson({ a: 2, z: 1 }));
  });

  it('refuses values whose JSON form is ambiguous', () => {
    expect(() => canonicalJson({ n: Number.NaN })).toThrow('NaN');
    expect(() => canonicalJson({ d: new Date(0) })).toThrow('non-plain object');
    expect(() => canonicalJson({ b: 1n })).toThrow('bigint');
  });
});

describe('log entries', () => {
  const entry = { index: 3, eventId: 'evt-3', prevLeafHash: leafHash(Buffer.from('p')), event: { action: 'grant.revoked', by: 'u1' } };

  it('encode index, event id, predecessor hash and event as documented', () => {
    const bytes = canonicalEntryBytes(entry);
    expect(bytes.toString()).toBe(
      `{"event":{"action":"grant.revoked","by":"u1"},"eventId":"evt-3","index":3,"prev":"${entry.prevLeafHash.toString('hex')}","v":1}`,
    );
    expect(decodeEntryBytes(bytes)).toEqual(entry);
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
  });

  it('resume from a snapshot and the last leaf hash into the same log', () => {
    const whole = LogWriter.empty();
    const first = [1, 2, 3, 4, 5].map((n) => whole.append(`e${n}`, n));
    const resumed = LogWriter.resume(whole.snapshot(), first[4]!.leafHash);
    expect(resumed.append('e6', 6)).toEqual(whole.append('e6', 6));
    expect(resumed.root()).toEqual(whole.root());
    expect(() => LogWriter.resume(whole.snapshot(), undefined)).toThrow('last leaf hash');
  });
});
