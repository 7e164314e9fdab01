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
