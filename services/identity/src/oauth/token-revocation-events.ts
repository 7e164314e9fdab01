import { randomUUID } from 'node:crypto';

import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { AppError } from '@context-gateway/errors';
import { JetStreamPublisher } from '@context-gateway/messaging';
import { events, TokenRevocationKind } from '@context-gateway/proto';
import { LOGGER } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

export { TokenRevocationKind };

/** Attempts at publishing one revocation before giving up (the tokens then live out their short TTL). */
const ATTEMPTS = 3;

/**
 * Publishes `control.v1.tokens_revoked` on the CONTROL stream: every gateway refuses, from
 * its next request, the access tokens issued at or before now for a grant (token family),
 * an application or a person (docs/identity.md). Awaited before the revoking request
 * answers, so "revoked" in a response means "refused everywhere from now on".
 */
@Injectable()
export class TokenRevocationEvents {
  constructor(
    private readonly publisher: JetStreamPublisher,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async revoked(orgId: string, kind: TokenRevocationKind, subjectId: string): Promise<void> {
    const message = {
      eventId: randomUUID(),
      orgId,
      kind,
      subjectId,
      // The wall clock, as oidc-provider's `iat` is: the gateway compares the two.
      revokedAt: timestampFromDate(new Date()),
    };
    for (let attempt = 1; ; attempt++) {
      try {
        await this.publisher.publish(events.tokensRevoked, message, { timeoutMs: 1_000 });
        return;
      } catch (error) {
        if (attempt >= ATTEMPTS) {
          // Access tokens live at most OAUTH_ACCESS_TOKEN_TTL_SECONDS; the grant itself is gone already.
          this.logger.error(
            { err: (error as Error).message, orgId, kind: TokenRevocationKind[kind] },
            'tokens_revoked not published: gateways accept the revoked access tokens until they expire',
          );
          throw new AppError(
            'service_unavailable',
            'The revocation is stored but the gateways could not be told yet; retry it',
            [],
            { cause: error },
          );
        }
      }
    }
  }
}
