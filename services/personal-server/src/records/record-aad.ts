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
