import { DataKey } from '@context-gateway/crypto';
import { jest } from '@jest/globals';
import fc from 'fast-check';

import {
  grantSealMatches,
  MAX_MATCHED_PER_KEY,
  sameSealedFields,
  sealedFields,
  type SealedGrantFields,
  sealGrant,
} from './grant-seal.js';

const grant: SealedGrantFields = {
  id: 'grant-1',
  connectionId: 'connection-1',
  orgId: 'org-1',
  applicationId: 'app-1',
  userId: 'user-1',
  scopes: ['spotify:read:playlists'],
  types: ['media.playlist'],
  consentNonce: 'nonce-1',
};

describe('grantSealMatches', () => {
  it('computes the seal once for a grant row read back unchanged under the same key', () => {
    const key = DataKey.generate();
    const seal = sealGrant(key, grant);
    const digests = jest.spyOn(key, 'digestMatches');
    expect(grantSealMatches(key, grant, seal)).toBe(true);
    expect(grantSealMatches(key, { ...grant, scopes: [...grant.scopes] }, Buffer.from(seal))).toBe(true);
    expect(digests).toHaveBeenCalledTimes(1);
  });

  it('after a match, still refuses the row once a sealed field or the seal changed', () => {
    const key = DataKey.generate();
    const seal = sealGrant(key, grant);
    expect(grantSealMatches(key, grant, seal)).toBe(true);
    // Widened in SQL, moved to another app, or another consent: each is a different input.
    expect(grantSealMatches(key, { ...grant, types: ['media.playlist', 'media.playlist_item'] }, seal)).toBe(false);
    expect(grantSealMatches(key, { ...grant, applicationId: 'app-2' }, seal)).toBe(false);
    expect(grantSealMatches(key, { ...grant, consentNonce: 'nonce-2' }, seal)).toBe(false);
    const forged = Buffer.from(seal);
    forged[0] = (forged[0] ?? 0) ^ 1;
    expect(grantSealMatches(key, grant, forged)).toBe(false);
    expect(grantSealMatches(key, grant, null)).toBe(false);
    expect(grantSealMatches(key, grant, seal)).toBe(true);
  });

  it('refuses a row read back with NULL scopes or types, their JSON null as node-pg gave it', () => {
    const key = DataKey.generate();
    const seal = sealGrant(key, grant);
    const nulls = { ...grant, scopes: null, types: null };
    expect(JSON.stringify(sealedFields(nulls))).toBe(
      '["grant-1","connection-1","org-1","app-1","user-1",null,null,"nonce-1"]',
    );
    expect(grantSealMatches(key, nulls, seal)).toBe(false);
    expect(grantSealMatches(key, { ...grant, types: null }, seal)).toBe(false);
    expect(grantSealMatches(key, grant, seal)).toBe(true);
  });

  it('remembers nothing across keys: another key, or the same key shredded, decides afresh', () => {
    const key = DataKey.generate();
    const seal = sealGrant(key, grant);
    expect(grantSealMatches(key, grant, seal)).toBe(true);
    expect(grantSealMatches(DataKey.generate(), grant, seal)).toBe(false);
    key.destroy();
    expect(() => grantSealMatches(key, grant, seal)).toThrow(expect.objectContaining({ code: 'key_destroyed' }));
  });

  it('past MAX_MATCHED_PER_KEY grants of one key, forgets the oldest match only', () => {
    const key = DataKey.generate();
    const grants = Array.from({ length: MAX_MATCHED_PER_KEY + 1 }, (_, i) => ({ ...grant, id: `grant-${i}` }));
    const seals = grants.map((g) => sealGrant(key, g));
    const digests = jest.spyOn(key, 'digestMatches');
    for (const [i, g] of grants.entries()) expect(grantSealMatches(key, g, seals[i]!)).toBe(true);
    expect(digests).toHaveBeenCalledTimes(grants.length);
    // The newest MAX_MATCHED_PER_KEY are still remembered; only the first is computed again.
    for (const [i, g] of grants.entries()) if (i > 0) expect(grantSealMatches(key, g, seals[i]!)).toBe(true);
    expect(digests).toHaveBeenCalledTimes(grants.length);
    expect(grantSealMatches(key, grants[0]!, seals[0]!)).toBe(true);
    expect(digests).toHaveBeenCalledTimes(grants.length + 1);
  });

  it('does not keep a reference to the caller’s seal buffer', () => {
    const key = DataKey.generate();
    const seal = sealGrant(key, grant);
    const read = Buffer.from(seal);
    expect(grantSealMatches(key, grant, read)).toBe(true);
    // The row's buffer changes under us (pg reuses nothing, but a caller might): the memory holds its own copy.
    read.fill(0);
    expect(grantSealMatches(key, grant, read)).toBe(false);
    expect(grantSealMatches(key, grant, seal)).toBe(true);
  });

  it('does not keep a reference to the caller’s arrays: a row widened in place after a match is refused', () => {
    const key = DataKey.generate();
    const seal = sealGrant(key, grant);
    const row = { ...grant, types: [...grant.types] };
    expect(grantSealMatches(key, row, seal)).toBe(true);
    row.types.push('media.playlist_item');
    expect(grantSealMatches(key, row, seal)).toBe(false);
  });

  it('refuses a matched row whose object or nested array value changed in place (no grant row holds one)', () => {
    // Values a text[] or text column never holds, sealed as they are: the memo must not take them as the same.
    const nested = { ...grant, types: [['media.playlist']] as unknown as string[] };
    const object = { ...grant, consentNonce: { nonce: 'nonce-1' } as unknown as string };
    for (const [row, change] of [
      [nested, () => (nested.types[0] as unknown as string[]).push('media.playlist_item')],
      [object, () => ((object.consentNonce as unknown as { nonce: string }).nonce = 'nonce-2')],
    ] as const) {
      const key = DataKey.generate();
      const seal = sealGrant(key, row);
      expect(grantSealMatches(key, row, seal)).toBe(true);
      change();
      expect(grantSealMatches(key, row, seal)).toBe(false);
    }
  });
});

describe('sameSealedFields', () => {
  // What a grant row's sealed fields can be: strings (any code point, lone surrogates too),
  // NULL, and text[] columns whose elements may be NULL.
  const text = fc.string({ unit: 'binary' });
  const field = fc.oneof(text, fc.constant(null), fc.array(fc.oneof(text, fc.constant(null)), { maxLength: 3 }));
  const json = (fields: unknown[]) => JSON.stringify(fields);

  it('is true exactly when the two lists have the same JSON', () => {
    fc.assert(
      fc.property(fc.array(field, { maxLength: 8 }), fc.array(field, { maxLength: 8 }), (a, b) => {
        expect(sameSealedFields(a, b)).toBe(json(a) === json(b));
        // A copy (as a row read back again is) is the same.
        expect(sameSealedFields(a, structuredClone(a))).toBe(true);
      }),
    );
  });

  it('tells apart what only a value-by-value comparison could confuse', () => {
    // A string and the array of its characters have the same length and elements by index.
    expect(sameSealedFields(['ab'], [['a', 'b']])).toBe(false);
    expect(sameSealedFields([['a', 'b']], ['ab'])).toBe(false);
    expect(sameSealedFields([null], ['null'])).toBe(false);
    expect(sameSealedFields([['a', null]], [['a', 'null']])).toBe(false);
    expect(sameSealedFields([['a,b']], [['a', 'b']])).toBe(false);
    expect(sameSealedFields([[]], [null])).toBe(false);
    expect(sameSealedFields(['a'], ['a', 'b'])).toBe(false);
  });

  it('never says "same" where the JSON differs, for values no grant row holds', () => {
    const odd = fc.oneof(fc.integer(), fc.constant(undefined), fc.boolean(), fc.object({ maxDepth: 1 }));
    fc.assert(
      fc.property(
        fc.array(fc.oneof(field, odd), { maxLength: 4 }),
        fc.array(fc.oneof(field, odd), { maxLength: 4 }),
        (a, b) => {
          if (sameSealedFields(a, b)) expect(json(a)).toBe(json(b));
        },
      ),
    );
  });
});
