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

/** The shard's one `grants` row per (connection, application): its terms and whether it answers. */
export interface HeldGrant {
  grantId: string;
  scopes: string[];
  active: boolean;
}

/**
 * The Personal Server's consent side on the wire: check_consent as answerConsentCheck, and
 * provision / register_grant, which need the same proof for the grant's own terms. Keeps
 * every consent and registration it accepted, and the grants it holds as a shard does (a
 * registration replaces the row of that connection and application; revoke_grant matches by
 * id or by connection, application and person). `failing` makes a call fail as a shard that
 * timed out or crashed would, changing nothing.
 */
export class ConsentChecks {
  readonly accepted: CheckConsentRequest[] = [];
  readonly registered: RegisterGrantRequest[] = [];
  readonly held = new Map<string, HeldGrant>();
  readonly failing = new Set<'register_grant' | 'revoke_grant'>();

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
      if (checks.failing.has('register_grant')) throw new AppError('internal', 'the shard failed');
      answerConsentCheck(grant, m.consent);
      checks.registered.push(m);
      checks.held.set(`${grant.connectionId} ${grant.applicationId}`, {
        grantId: grant.grantId,
        scopes: [...grant.scopes],
        active: true,
      });
      return { grant, shard: 0 };
    });
    answerRpc(nc, rpc.personalServer.revokeGrant, (m) => {
      if (checks.failing.has('revoke_grant')) throw new AppError('internal', 'the shard failed');
      const key = m.grantId
        ? [...checks.held].find(([, held]) => held.grantId === m.grantId)?.[0]
        : `${m.connectionId} ${m.applicationId}`;
      const held = key === undefined ? undefined : checks.held.get(key);
      if (!held) throw new AppError('not_found', 'No such grant');
      held.active = false;
      return {};
    });
    return checks;
  }

  /** The grant the shard answers for this app on this connection, if one is active. */
  answering(connectionId: string, applicationId: string): HeldGrant | undefined {
    const held = this.held.get(`${connectionId} ${applicationId}`);
    return held?.active ? held : undefined;
  }
}
