import { randomUUID } from 'node:crypto';

import { Clock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { Injectable } from '@nestjs/common';

import type { OAuthRegistrationToken } from '../generated/prisma/client.js';
import { hasSecretShape, newSecret, sha256 } from '../secrets.js';
import { OAuthRegistrationRepository } from './oauth-registration.repository.js';

/** Initial access tokens: `cg_iat_` + 256 random bits; only the SHA-256 is stored. */
const REGISTRATION_TOKEN_PREFIX = 'cg_iat_';

/**
 * What an organization admin does with initial access tokens for dynamic client
 * registration (RFC 7591 §3): issue one (shown once), list, revoke. Registration itself is
 * oidc-provider's (oauth-provider.ts), which looks the presented token up here.
 */
@Injectable()
export class OAuthRegistrationService {
  constructor(
    private readonly tokens: OAuthRegistrationRepository,
    private readonly clock: Clock,
  ) {}

  async issue(input: {
    orgId: string;
    issuedBy: string;
    expiresInSeconds: number;
    singleUse: boolean;
  }): Promise<{ registrationToken: OAuthRegistrationToken; token: string }> {
    const token = newSecret(REGISTRATION_TOKEN_PREFIX);
    try {
      const registrationToken = await this.tokens.create({
        id: randomUUID(),
        orgId: input.orgId,
        tokenHash: sha256(token),
        createdBy: input.issuedBy,
        singleUse: input.singleUse,
        expiresAt: new Date(this.clock.now() + input.expiresInSeconds * 1_000),
      });
      return { registrationToken, token };
    } catch (error) {
      // The organization does not exist (foreign key).
      if ((error as { code?: string }).code === 'P2003') throw new AppError('not_found', 'No such organization');
      throw error;
    }
  }

  list(orgId: string): Promise<OAuthRegistrationToken[]> {
    return this.tokens.listInOrg(orgId);
  }

  async revoke(orgId: string, id: string): Promise<OAuthRegistrationToken> {
    const revoked = await this.tokens.revoke(orgId, id, this.clock.date());
    if (!revoked) throw new AppError('not_found', 'No such registration token in this organization');
    return revoked;
  }

  /** The token behind a presented value, while it may still register a client; undefined otherwise. */
  async usable(presented: string): Promise<OAuthRegistrationToken | undefined> {
    if (!hasSecretShape(presented, REGISTRATION_TOKEN_PREFIX)) return undefined;
    return (await this.tokens.usable(sha256(presented), this.clock.date())) ?? undefined;
  }
}
