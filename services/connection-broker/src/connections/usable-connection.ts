import { AppError } from '@context-gateway/errors';

import type { ConnectionOwner } from '../vault/credential-vault.js';
import type { Connection } from './connections.repository.js';

/** A connection whose credential can be opened: not deleted, key and ciphertext present. */
export type UsableConnection = Connection & { dataKeyId: string; credentialCiphertext: Uint8Array };

/**
 * The connection if its credential can be used; else the error its caller answers with
 * (a deleted or shredded connection is not found, one the source refused needs reauth).
 */
export function usable(connection: Connection | null): UsableConnection {
  if (!connection || connection.deletedAt || !connection.dataKeyId || !connection.credentialCiphertext)
    throw new AppError('connection_not_found');
  if (connection.status === 'needs_reauth') throw new AppError('connection_needs_reauth');
  return {
    ...connection,
    dataKeyId: connection.dataKeyId,
    credentialCiphertext: connection.credentialCiphertext,
  };
}

/** Who a connection's credential is bound to (the vault's encryption context). */
export function owner(connection: Pick<Connection, 'orgId' | 'userId' | 'id'>): ConnectionOwner {
  return { orgId: connection.orgId, userId: connection.userId, connectionId: connection.id };
}

export function sealed(connection: UsableConnection) {
  return { dataKeyId: connection.dataKeyId, ciphertext: connection.credentialCiphertext };
}

/**
 * One account at a source connects through one organization: its connection row (deleted
 * or not — the row stays, keyed by user and integration) belongs to the org that made it.
 */
export function assertSameOrganization(connection: Connection | null, orgId: string): void {
  if (!isSameOrganization(connection, orgId))
    throw new AppError('conflict', 'This account is connected through another organization');
}

/** No connection yet, or one made through `orgId`. */
export function isSameOrganization(connection: Connection | null, orgId: string): boolean {
  return !connection || connection.orgId === orgId;
}
