import { randomUUID } from 'node:crypto';

import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Clock } from '@context-gateway/clock';
import { JetStreamPublisher } from '@context-gateway/messaging';
import { ActorKind, AuditAction, AuditEventSchema, AuditOutcome, AuditPhase, events } from '@context-gateway/proto';
import { LOGGER } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

/** One OAuth fact worth the trail: who (application), for whom (person), what happened to which grant. */
export interface OAuthAuditRecord {
  /** `exchange_refused`: a token exchange whose subject token was refused (forged, foreign, replayed, stale). */
  /** `client_refused`: a metadata-URL client the person's organization did not allow (applicationId ''). */
  /** `registered`: a client registered dynamically (RFC 7591) with an initial access token. */
  action: 'issued' | 'refreshed' | 'revoked' | 'reuse_detected' | 'exchange_refused' | 'client_refused' | 'registered';
  orgId: string;
  applicationId: string;
  clientId: string;
  /** The person the tokens act for; undefined for an application acting as itself. */
  userId: string | undefined;
  grantId: string | undefined;
  /** What produced it, e.g. `POST /oauth/token authorization_code`. */
  operation: string;
  /** A refusal's code (`exchange_refused`: why the subject token was refused). */
  errorCode?: string;
}

/**
 * identity's audit of its authorization server: token issuance, refresh, reuse detection
 * and revocation, each naming the application and the person it delegates for, published
 * to the AUDIT stream like every other service's events (docs/audit.md). Ids only: never
 * a token, a code or a secret.
 */
@Injectable()
export class OAuthAudit {
  constructor(
    private readonly publisher: JetStreamPublisher,
    private readonly clock: Clock,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async record(r: OAuthAuditRecord): Promise<void> {
    const revocation = r.action === 'revoked' || r.action === 'reuse_detected';
    const refused = r.action === 'exchange_refused' || r.action === 'client_refused';
    const event = create(AuditEventSchema, {
      eventId: randomUUID(),
      occurredAt: timestampFromDate(this.clock.date()),
      orgId: r.orgId,
      applicationId: r.applicationId,
      userId: r.userId ?? '',
      resource: r.grantId ? `oauth_grant:${r.grantId}` : `oauth_client:${r.clientId}`,
      action: revocation ? AuditAction.REVOCATION : AuditAction.CREDENTIAL_ISSUED,
      outcome: refused ? AuditOutcome.DENIED : AuditOutcome.ALLOWED,
      phase: AuditPhase.COMPLETE,
      // A replayed refresh token: the family was revoked because of it.
      errorCode:
        r.action === 'reuse_detected'
          ? 'refresh_token_reused'
          : refused
            ? (r.errorCode ?? (r.action === 'client_refused' ? 'client_not_allowed' : 'subject_token_refused'))
            : '',
      actorKind: ActorKind.OAUTH_CLIENT,
      actorId: r.clientId,
      operation: r.operation,
    });
    try {
      await this.publisher.publish(events.auditRecorded, event, { timeoutMs: 2_000 });
    } catch (error) {
      // The tokens exist already; refusing the response now would not undo them.
      this.logger.error(
        { err: (error as Error).message, action: r.action, applicationId: r.applicationId },
        'OAuth audit event not recorded',
      );
    }
  }
}
