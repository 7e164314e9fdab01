import { randomBytes } from 'node:crypto';

import { Injectable } from '@nestjs/common';

import { UsersRepository } from '../accounts/accounts.repository.js';
import type { Tx } from '../database/database.module.js';
import { MembershipsRepository, type SsoConfigRow } from './sso.repository.js';

/** The claims of a person the organization's IdP vouched for (an ID token's, verified). */
export interface VouchedClaims {
  sub: string;
  [claim: string]: unknown;
}

/**
 * The gateway user behind an IdP account: found by (issuer, subject), or provisioned as a
 * member of the organization on first sight. Shared by the browser sign-in and token
 * exchange, so one IdP account is one person whichever way it arrives.
 */
@Injectable()
export class SsoPeople {
  constructor(
    private readonly users: UsersRepository,
    private readonly memberships: MembershipsRepository,
  ) {}

  async provision(
    row: SsoConfigRow,
    claims: VouchedClaims,
    now: Date,
    tx: Tx,
  ): Promise<{ userId: string; newUser: boolean }> {
    const email = typeof claims['email'] === 'string' ? claims['email'].toLowerCase() : null;
    const name =
      typeof claims['name'] === 'string' && claims['name'].trim() ? claims['name'].trim() : (email ?? 'SSO user');
    const known = await this.memberships.findSsoAccount(row.issuer, claims.sub, tx);
    const userId =
      known?.userId ??
      (
        await this.users.createUser(
          { displayName: name.slice(0, 100), webauthnUserId: randomBytes(32).toString('base64url') },
          tx,
        )
      ).id;
    await this.memberships.recordSsoSignIn(
      { issuer: row.issuer, subject: claims.sub, orgId: row.orgId, userId, email, now },
      tx,
    );
    return { userId, newUser: !known };
  }
}
