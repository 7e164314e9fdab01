import fc from 'fast-check';

import {
  aadPrefixFor,
  recordAad,
  recordAadEncoder,
  recordAadScratch,
  recordDigestContext,
  recordDigestContextEncoder,
} from './record-aad.js';

describe('recordAadEncoder', () => {
  it('gives the bytes of recordAad for every record of a connection', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.string(),
        fc.array(fc.tuple(fc.string(), fc.string()), { maxLength: 5 }),
        (ps, connection, records) => {
          const aad = recordAadEncoder(ps, connection);
          for (const [id, type] of records)
            expect(aad(id, type).equals(recordAad(ps, connection, id, type))).toBe(true);
        },
      ),
    );
  });

  it('encodes non-ASCII ids and types by their UTF-8 length', () => {
    const aad = recordAadEncoder('ps-é', 'connexion-ü');
    expect(aad('記録', 'type.ñ').equals(recordAad('ps-é', 'connexion-ü', '記録', 'type.ñ'))).toBe(true);
  });

  it('binds the record id and type: another of either gives other bytes', () => {
    const aad = recordAadEncoder('ps', 'connection');
    expect(aad('a', 'media.playlist').equals(aad('b', 'media.playlist'))).toBe(false);
    expect(aad('a', 'media.playlist').equals(aad('a', 'media.playlist_item'))).toBe(false);
  });
});

describe('recordAadScratch', () => {
  it('gives the bytes of recordAad for each record in turn, ids and types of any length mixed', () => {
    // Any code point (binary), so UTF-8 lengths of 1 to 4 bytes per character; types repeat
    // often enough (a few fixed ones) that the buffer is reused, and arbitrary ones make new ones.
    const text = fc.string({ unit: 'binary' });
    fc.assert(
      fc.property(
        text,
        text,
        fc.array(fc.tuple(fc.oneof(fc.uuid(), text), fc.oneof(fc.constantFrom('media.playlist', 'type.ñ', ''), text)), {
          maxLength: 12,
        }),
        (ps, connection, records) => {
          const aad = recordAadScratch(ps, connection);
          for (const [id, type] of records)
            expect(aad(id, type).equals(recordAad(ps, connection, id, type))).toBe(true);
        },
      ),
    );
  });

  it('encodes non-ASCII ids and types by their UTF-8 length', () => {
    const aad = recordAadScratch('ps-é', 'connexion-ü');
    expect(aad('記録', 'type.ñ').equals(recordAad('ps-é', 'connexion-ü', '記録', 'type.ñ'))).toBe(true);
    // Same UTF-16 length, another UTF-8 length: the id's length prefix must follow.
    expect(aad('記a', 'type.ñ').equals(recordAad('ps-é', 'connexion-ü', '記a', 'type.ñ'))).toBe(true);
  });

  it('overwrites the id of the previous record: another id of the same type gives other bytes', () => {
    const aad = recordAadScratch('ps', 'connection');
    const first = Buffer.from(aad('6f1c0a52-5a8e-4a59-9f43-3c1b7c1f0a01', 'media.playlist'));
    expect(aad('6f1c0a52-5a8e-4a59-9f43-3c1b7c1f0a02', 'media.playlist').equals(first)).toBe(false);
    expect(aad('6f1c0a52-5a8e-4a59-9f43-3c1b7c1f0a01', 'media.playlist').equals(first)).toBe(true);
  });
});

describe("recordAadScratch with a memo (the connection's key)", () => {
  it('gives the bytes of recordAad whatever servers and connections one memo object saw before', () => {
    // One memo for every case: a prefix remembered for another server or connection must
    // never be used for this one.
    const memo = {};
    const text = fc.string({ unit: 'binary' });
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.oneof(fc.constantFrom('ps-1', 'ps-é'), text), fc.oneof(fc.constantFrom('c-1', 'c-2'), text)),
          {
            minLength: 1,
            maxLength: 6,
          },
        ),
        fc.oneof(fc.uuid(), text),
        (owners, id) => {
          for (const [ps, connection] of owners) {
            const aad = recordAadScratch(ps, connection, memo);
            expect(aad(id, 'media.playlist').equals(recordAad(ps, connection, id, 'media.playlist'))).toBe(true);
          }
        },
      ),
    );
  });

  it('makes the prefix once per memo, server and connection, in a buffer of its own', () => {
    const memo = {};
    const prefix = aadPrefixFor(memo, 'ps', 'connection');
    expect(aadPrefixFor(memo, 'ps', 'connection')).toBe(prefix);
    // Not a view into Buffer's shared pool, which it would keep alive as long as the key.
    expect(prefix.byteOffset).toBe(0);
    expect(prefix.buffer.byteLength).toBe(prefix.length);
    const other = aadPrefixFor(memo, 'ps', 'connection-2');
    expect(other).not.toBe(prefix);
    expect(other.equals(prefix)).toBe(false);
    expect(aadPrefixFor({}, 'ps', 'connection')).not.toBe(prefix);
    expect(aadPrefixFor({}, 'ps', 'connection').equals(prefix)).toBe(true);
  });
});

describe('recordDigestContextEncoder', () => {
  it('gives the bytes of recordDigestContext for every record of a connection', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.string(),
        fc.array(fc.tuple(fc.string(), fc.string()), { maxLength: 5 }),
        (ps, connection, records) => {
          const context = recordDigestContextEncoder(ps, connection);
          for (const [type, externalId] of records)
            expect(context(type, externalId).equals(recordDigestContext(ps, connection, type, externalId))).toBe(true);
        },
      ),
    );
  });

  it('encodes non-ASCII servers, types and external ids by their UTF-8 length', () => {
    const context = recordDigestContextEncoder('ps-é', 'connexion-ü');
    expect(context('type.ñ', '記録').equals(recordDigestContext('ps-é', 'connexion-ü', 'type.ñ', '記録'))).toBe(true);
  });
});
