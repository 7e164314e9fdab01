import { type DataKey, encodeContext } from '@context-gateway/crypto';

/**
 * A pinned passkey's seal: a keyed digest (DataKey.digest) of the person, the credential id
 * and its public key under the Personal Server's own key, which is wrapped by the shard's
 * KEK and kept out of Postgres. A passkey inserted or swapped in SQL has no valid seal and
 * signs nothing.
 */
export function sealPasskey(
  key: DataKey,
  pin: { userId: string; credentialId: string; publicKey: Uint8Array },
): Buffer {
  return key.digest(pin.publicKey, sealContext(pin));
}

export function passkeySealMatches(
  key: DataKey,
  pin: { userId: string; credentialId: string; publicKey: Uint8Array; seal: Buffer },
): boolean {
  return key.digestMatches(pin.publicKey, sealContext(pin), pin.seal);
}

function sealContext(pin: { userId: string; credentialId: string }): Buffer {
  return encodeContext({ purpose: 'ps.pinned_passkey.v1', user: pin.userId, credential: pin.credentialId });
}
