import { type DataKey, encodeContext } from '@context-gateway/crypto';

import type { GrantRow } from './grants.repository.js';

/** What an active grant says: who may read which types of which connection (scopes, types sorted). */
export type SealedGrantFields = Omit<GrantRow, 'state' | 'integration'>;

const SEAL_FORMAT = 'ps.grant.v1';

/**
 * The seal of an active grant: a keyed digest (DataKey.digest, HMAC-SHA-256 under a subkey
 * of the connection's data key) of every field that decides what the grant lets an app
 * read, and of the nonce of the signed consent it was registered with. Only this service
 * can make one, and only while the connection's key exists (it is wrapped by the shard's
 * KEK, never stored in the database). The query path honours an
 * active grant only with a seal that matches its row: a grant inserted in SQL, one whose
 * scopes or types were widened, one moved to another app, org or connection, or a revoked
 * one set back to active (its seal is cleared on revocation) is refused.
 */
export function sealGrant(key: DataKey, grant: SealedGrantFields): Buffer {
  return key.digest(...sealInput(grant));
}

/** True when `seal` is this grant's seal under `key` (constant-time comparison). */
export function grantSealMatches(key: DataKey, grant: SealedGrantFields, seal: Buffer | null): boolean {
  return key.digestMatches(...sealInput(grant), seal);
}

function sealInput(grant: SealedGrantFields): [Buffer, Buffer] {
  return [
    Buffer.from(JSON.stringify(sealedFields(grant)), 'utf8'),
    encodeContext({ purpose: SEAL_FORMAT, grant: grant.id, connection: grant.connectionId }),
  ];
}

/** The sealed fields in their fixed order (JSON arrays of strings serialize one way). */
export function sealedFields(grant: SealedGrantFields): unknown[] {
  return [
    grant.id,
    grant.connectionId,
    grant.orgId,
    grant.applicationId,
    grant.userId,
    grant.scopes,
    grant.types,
    grant.consentNonce,
  ];
}
