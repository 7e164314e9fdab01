import { randomUUID } from 'node:crypto';

import { timestampDate } from '@bufbuild/protobuf/wkt';
import { grantChallenge } from '@context-gateway/crypto';
import { AppError } from '@context-gateway/errors';
import { answerRpc } from '@context-gateway/messaging/testing';
import { type CheckConsentRequest, type PasskeyProof, type RegisterGrantRequest, rpc } from '@context-gateway/proto';
import type { NatsConnection } from '@nats-io/transport-node';

/**
 * What the person's passkey sends for a consent challenge, as far as the broker's tests
 * need: the challenge itself, named. The broker never looks inside a signature; the
 * Personal Server verifies real ones (services/personal-server passkeys.int-spec.ts, and
 * test-e2e end to end).
 */
export function signedConsent(challenge: string): string {
  return JSON.stringify({ signedChallenge: challenge });
}

/**
 * The Personal Server's answer to ps.v1.check_consent, for the broker's integration tests:
 * the "signature" must name the challenge of exactly the terms the broker sends (its
 * person, org, application, integration, scopes, nonce and expiry), so a test fails when
 * the consent page's challenge and the proof the broker forwards disagree.
 */
export function answerConsentCheck(
  m: Pick<CheckConsentRequest, 'userId' | 'orgId' | 'applicationId' | 'integration' | 'scopes'>,
  proof: PasskeyProof | undefined,
): { credentialId: string } {
  if (!proof?.notAfter) throw new AppError('passkey_signature_invalid', 'no proof');
  const challenge = grantChallenge({
    userId: m.userId,
    orgId: m.orgId,
    applicationId: m.applicationId,
    integration: m.integration,
    scopes: m.scopes,
    nonce: proof.nonce,
    notAfter: timestampDate(proof.notAfter),
  });
  if (proof.assertionJson !== signedConsent(challenge))
    throw new AppError('passkey_signature_invalid', 'not signed for these terms');
  return { credentialId: 'test-passkey' };
}

/**
 * The Personal Server's consent side on the wire: check_consent as answerConsentCheck, and
 * provision / register_grant, which need the same proof for the grant's own terms. Keeps
 * every consent and registration it accepted.
 */
export class ConsentChecks {
  readonly accepted: CheckConsentRequest[] = [];
  readonly registered: RegisterGrantRequest[] = [];

  static answerOn(nc: NatsConnection): ConsentChecks {
    const checks = new ConsentChecks();
    answerRpc(nc, rpc.personalServer.checkConsent, (m) => {
      const answer = answerConsentCheck(m, m.consent);
      checks.accepted.push(m);
      return answer;
    });
    answerRpc(nc, rpc.personalServer.provision, () => ({ personalServerId: randomUUID(), shard: 0 }));
    answerRpc(nc, rpc.personalServer.registerGrant, (m) => {
      const grant = m.grant;
      if (!grant) throw new AppError('validation_failed', 'no grant');
      answerConsentCheck(grant, m.consent);
      checks.registered.push(m);
      return { grant, shard: 0 };
    });
    return checks;
  }
}
