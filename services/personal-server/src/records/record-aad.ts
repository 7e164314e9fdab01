import { encodeContext } from '@context-gateway/crypto';

/**
 * Associated data of a record's ciphertext: the personal server, connection, record id and
 * type it belongs to. None of it is stored inside the ciphertext; the reader supplies it
 * from the row's own columns, so a row copied (in SQL) to another user's server, another
 * connection, another record id or another type fails authentication.
 */
export function recordAad(personalServerId: string, connectionId: string, recordId: string, type: string): Buffer {
  return encodeContext({ ps: personalServerId, connection: connectionId, record: recordId, type });
}

/**
 * What a record body's digest is bound to (DataKey.digest): the personal server, connection,
 * type and the item's id at the source — not the record id, which a new record does not have
 * yet. Equal bodies of two different items digest differently.
 */
export function recordDigestContext(
  personalServerId: string,
  connectionId: string,
  type: string,
  externalId: string,
): Buffer {
  return encodeContext({ ps: personalServerId, connection: connectionId, type, external: externalId });
}

/**
 * `recordAad` for the records of one connection, as a function of the record id and type:
 * the bytes before the record id (the count, the connection, the server and the `record`
 * key) are encoded once per page, not once per record. Byte for byte the same as recordAad
 * (record-aad.spec.ts): the context's keys sort as connection, ps, record, type.
 */
export function recordAadEncoder(
  personalServerId: string,
  connectionId: string,
): (recordId: string, type: string) => Buffer {
  const prefix = aadPrefix(personalServerId, connectionId);
  return (recordId, type) => {
    const out = Buffer.allocUnsafe(
      prefix.length + 4 + Buffer.byteLength(recordId) + 4 + TYPE_KEY.length + 4 + Buffer.byteLength(type),
    );
    let offset = prefix.copy(out, 0);
    offset = writeString(out, recordId, offset);
    offset = writeString(out, TYPE_KEY, offset);
    writeString(out, type, offset);
    return out;
  };
}

const TYPE_KEY = 'type';

/** A record AAD's bytes before the record id: the count, the connection, the server and the `record` key. */
function aadPrefix(personalServerId: string, connectionId: string): Buffer {
  const whole = recordAad(personalServerId, connectionId, '', '');
  // Without the empty record id's length, the `type` key and the empty type.
  return whole.subarray(0, whole.length - (4 + 4 + TYPE_KEY.length + 4));
}

/**
 * `recordAadEncoder` for a page being read: one buffer per page, overwritten by each call
 * and returned again, so **the bytes are valid until the next call only** — for a use that
 * consumes them at once (`DataKey.decrypt` hands them to AES-GCM before it returns). Record
 * ids are uuids, so within a type every record's associated data has the same length and
 * only the id's bytes are written per record; a buffer of a new length or type is made when
 * one comes. A fresh buffer per record (recordAadEncoder) was ~a third of rendering a page
 * of 20 outside AES-GCM. Byte for byte recordAad (record-aad.spec.ts).
 */
export function recordAadScratch(
  personalServerId: string,
  connectionId: string,
  memo?: object,
): (recordId: string, type: string) => Buffer {
  const prefix =
    memo === undefined ? aadPrefix(personalServerId, connectionId) : aadPrefixFor(memo, personalServerId, connectionId);
  let scratch: Buffer | undefined;
  let scratchType = '';
  let idLength = -1;
  return (recordId, type) => {
    const length = Buffer.byteLength(recordId);
    if (scratch === undefined || type !== scratchType || length !== idLength) {
      scratch = Buffer.allocUnsafe(prefix.length + 4 + length + 4 + TYPE_KEY.length + 4 + Buffer.byteLength(type));
      prefix.copy(scratch, 0);
      scratch.writeUInt32BE(length, prefix.length);
      writeString(scratch, type, writeString(scratch, TYPE_KEY, prefix.length + 4 + length));
      scratchType = type;
      idLength = length;
    }
    scratch.write(recordId, prefix.length + 4, 'utf8');
    return scratch;
  };
}

/** The prefix last made under each memo object, for which server and connection. */
const prefixes = new WeakMap<object, { personalServerId: string; connectionId: string; prefix: Buffer }>();

/**
 * `aadPrefix`, remembered per `memo` object (the query path passes the connection's open
 * DataKey, which the key cache hands out again for every page of that connection): making it
 * encodes and sorts a whole context, ~2 µs per page (docs/perf/README.md, seventh session).
 * Used only for a memo made under the same server and connection; anything else is made
 * afresh. Weakly held, so it goes when the key cache lets go of the key. The bytes are
 * copied out of Buffer's shared pool (a remembered view would keep an 8 KB slab alive) and
 * are only ever read: every user copies them into a buffer of its own.
 */
export function aadPrefixFor(memo: object, personalServerId: string, connectionId: string): Buffer {
  const hit = prefixes.get(memo);
  if (hit !== undefined && hit.personalServerId === personalServerId && hit.connectionId === connectionId)
    return hit.prefix;
  const made = aadPrefix(personalServerId, connectionId);
  const prefix = Buffer.allocUnsafeSlow(made.length);
  made.copy(prefix);
  prefixes.set(memo, { personalServerId, connectionId, prefix });
  return prefix;
}

function writeString(out: Buffer, text: string, offset: number): number {
  const length = out.write(text, offset + 4, 'utf8');
  out.writeUInt32BE(length, offset);
  return offset + 4 + length;
}

/**
 * `recordDigestContext` for the records of one connection, as a function of the type and
 * external id: the connection and the server are encoded once per write, not once per record
 * (encodeContext sorts and measures every key each time: a twelfth of a shard's CPU while a
 * sync wrote). Byte for byte the same as recordDigestContext (record-aad.spec.ts): the
 * context's keys sort as connection, external, ps, type.
 */
export function recordDigestContextEncoder(
  personalServerId: string,
  connectionId: string,
): (type: string, externalId: string) => Buffer {
  const whole = recordDigestContext(personalServerId, connectionId, '', '');
  // Up to the empty external id's length; after it, the `ps` key and value and the `type` key.
  const head = whole.subarray(
    0,
    whole.length - (4 + 4 + PS_KEY.length + 4 + Buffer.byteLength(personalServerId)) - (4 + TYPE_KEY.length + 4),
  );
  const middle = whole.subarray(head.length + 4, whole.length - 4);
  return (type, externalId) => {
    const out = Buffer.allocUnsafe(
      head.length + 4 + Buffer.byteLength(externalId) + middle.length + 4 + Buffer.byteLength(type),
    );
    let offset = head.copy(out, 0);
    offset = writeString(out, externalId, offset);
    offset += middle.copy(out, offset);
    writeString(out, type, offset);
    return out;
  };
}

const PS_KEY = 'ps';
