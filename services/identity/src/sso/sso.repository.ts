import { Inject, Injectable } from '@nestjs/common';

import { IDENTITY_DB, type IdentityDb, type Tx } from '../database/database.module.js';
import type { Organization, OrganizationSso, SsoLogin } from '../generated/prisma/client.js';

export type SsoConfigRow = OrganizationSso & { organization: Organization };

/** Organizations' IdP configurations (one per organization). */
@Injectable()
export class SsoConfigsRepository {
  constructor(@Inject(IDENTITY_DB) private readonly db: IdentityDb) {}

  transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
    return this.db.$transaction((tx) => work(tx));
  }

  upsert(
    data: Omit<OrganizationSso, 'createdAt' | 'updatedAt' | 'requiredClaims'> & {
      requiredClaims: Record<string, string>;
    },
    tx: Tx = this.db,
  ): Promise<SsoConfigRow> {
    return tx.organizationSso.upsert({
      where: { orgId: data.orgId },
      create: data,
      update: data,
      include: { organization: true },
    });
  }

  find(orgId: string, tx: Tx = this.db): Promise<SsoConfigRow | null> {
    return tx.organizationSso.findUnique({ where: { orgId }, include: { organization: true } });
  }

  findBySlug(slug: string, tx: Tx = this.db): Promise<SsoConfigRow | null> {
    return tx.organizationSso.findFirst({ where: { organization: { slug } }, include: { organization: true } });
  }

  /** The configurations claiming any of these domains (configure keeps it at most one per domain). */
  findByEmailDomains(domains: string[], tx: Tx = this.db): Promise<SsoConfigRow[]> {
    return tx.organizationSso.findMany({
      where: { emailDomains: { hasSome: domains } },
      include: { organization: true },
      take: 10,
    });
  }

  async delete(orgId: string, tx: Tx = this.db): Promise<boolean> {
    const { count } = await tx.organizationSso.deleteMany({ where: { orgId } });
    return count === 1;
  }
}

/** SSO sign-ins in progress. */
@Injectable()
export class SsoLoginsRepository {
  constructor(@Inject(IDENTITY_DB) private readonly db: IdentityDb) {}

  create(
    data: Pick<
      SsoLogin,
      'stateHash' | 'browserTokenHash' | 'orgId' | 'codeVerifier' | 'nonce' | 'returnTo' | 'expiresAt'
    >,
    tx: Tx = this.db,
  ): Promise<SsoLogin> {
    return tx.ssoLogin.create({ data });
  }

  /**
   * Takes the sign-in for good, in one UPDATE: only the browser holding its token, only
   * once, only while unexpired. What returns is no longer usable (a replayed state finds nothing).
   */
  async consume(
    stateHash: string,
    browserTokenHash: string,
    now: Date,
    tx: Tx = this.db,
  ): Promise<SsoLogin | undefined> {
    const rows = await tx.ssoLogin.updateManyAndReturn({
      where: { stateHash, browserTokenHash, consumedAt: null, expiresAt: { gt: now } },
      data: { consumedAt: now },
    });
    return rows[0];
  }

  /** Sign-ins older than an hour past their expiry are worthless; keep the table small. */
  async prune(now: Date, tx: Tx = this.db): Promise<number> {
    const { count } = await tx.ssoLogin.deleteMany({
      where: { expiresAt: { lt: new Date(now.getTime() - 3_600_000) } },
    });
    return count;
  }
}

/** Who belongs to which organization, and the IdP accounts people sign in with. */
@Injectable()
export class MembershipsRepository {
  constructor(@Inject(IDENTITY_DB) private readonly db: IdentityDb) {}

  findSsoAccount(issuer: string, subject: string, tx: Tx = this.db) {
    return tx.ssoAccount.findUnique({ where: { issuer_subject: { issuer, subject } } });
  }

  async recordSsoSignIn(
    data: { issuer: string; subject: string; orgId: string; userId: string; email: string | null; now: Date },
    tx: Tx = this.db,
  ): Promise<void> {
    const { now, ...account } = data;
    await tx.ssoAccount.upsert({
      where: { issuer_subject: { issuer: data.issuer, subject: data.subject } },
      create: { ...account, createdAt: now, lastSignInAt: now },
      update: { email: data.email, lastSignInAt: now },
    });
    await tx.membership.upsert({
      where: { userId_orgId: { userId: data.userId, orgId: data.orgId } },
      create: { userId: data.userId, orgId: data.orgId, role: 'member', source: 'sso', createdAt: now },
      update: {},
    });
  }
}
