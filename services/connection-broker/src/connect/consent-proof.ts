import { type MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { grantChallenge, type GrantStatement } from '@context-gateway/crypto';
import type { PasskeyProofSchema } from '@context-gateway/proto';

import type { ConnectSession } from './connect-sessions.repository.js';

/**
 * How long after the connect session's own expiry a signed consent stays usable. The broker
 * refuses a callback once the session expired, so this only covers the registration that
 * follows a callback in the session's last moments, and clocks that differ a little.
 */
const CONSENT_OUTLIVES_SESSION_MS = 5 * 60_000;

/**
 * What the person signs by allowing: this session's application, org, integration and
 * scopes, for them, once (the session's nonce), until a fixed time. The Personal Server
 * rebuilds the same statement from the grant it registers (libs/crypto passkey-statement.ts).
 */
function consentStatement(session: ConnectSession, userId: string): GrantStatement {
  return {
    userId,
    orgId: session.orgId,
    applicationId: session.applicationId,
    integration: session.integration,
    scopes: session.scopes,
    // ConnectService.allow refuses a session without one before anything is signed or checked.
    nonce: session.consentNonce ?? '',
    notAfter: new Date(session.expiresAt.getTime() + CONSENT_OUTLIVES_SESSION_MS),
  };
}

/** The WebAuthn challenge the consent page asks the person's passkey to sign. */
export function consentChallenge(session: ConnectSession, userId: string): string {
  return grantChallenge(consentStatement(session, userId));
}

/** The signed consent as the Personal Server takes it (register_grant, check_consent). */
export function consentProof(
  session: ConnectSession,
  userId: string,
  assertionJson: string,
): MessageInitShape<typeof PasskeyProofSchema> {
  const { nonce, notAfter } = consentStatement(session, userId);
  return { nonce, notAfter: timestampFromDate(notAfter), assertionJson };
}
