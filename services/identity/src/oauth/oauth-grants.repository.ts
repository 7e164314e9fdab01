import { Inject, Injectable } from '@nestjs/common';

import { IDENTITY_DB, type IdentityDb, type Tx } from '../database/database.module.js';

/** One grant of the authorization server, as a person sees it. */
export interface GrantRow {
  grantId: string;
  clientId: string;
  accountId: string;
  scopes: string[];
  createdAt: Date;
  expiresAt: Date | null;
  application: { id: string; orgId: string; name: string } | undefined;
}

interface GrantPayload {
  accountId?: unknown;
  clientId?: unknown;
  iat?: unknown;
  resources?: unknown;
}

/**
 * The grants (token families) oidc-provider keeps in `oauth_payloads` (model `Grant`), read
 * per person, with the application each belongs to. Revoking one is the store's
 * `revokeByGrantId`.
 */
@Injectable()
export class OAuthGrantsRepository {
  constructor(@Inject(IDENTITY_DB) private readonly db: IdentityDb) {}

  /** The person's unexpired grants, newest first. */
  async ofAccount(accountId: string, now: Date): Promise<GrantRow[]> {
    const rows = await this.db.oAuthPayload.findMany({
      where: {
        model: 'Grant',
        payload: { path: ['accountId'], equals: accountId },
        OR: [{ expiresAt: null }, { expiresAt: { gt: now } }],
      },
      select: { id: true, payload: true, expiresAt: true },
      take: 500,
    });
    return this.withApplications(rows);
  }

  /** Every unexpired grant of one client (an application), newest first. */
  async ofClient(clientId: string, now: Date): Promise<GrantRow[]> {
    const rows = await this.db.oAuthPayload.findMany({
      where: {
        model: 'Grant',
        payload: { path: ['clientId'], equals: clientId },
        OR: [{ expiresAt: null }, { expiresAt: { gt: now } }],
      },
      select: { id: true, payload: true, expiresAt: true },
      take: 1_000,
    });
    return this.withApplications(rows);
  }

  /** Deletes every grant of a client and everything issued under them; returns how many grants. */
  async revokeClient(clientId: string, tx: Tx): Promise<number> {
    const grants = await tx.oAuthPayload.findMany({
      where: { model: 'Grant', payload: { path: ['clientId'], equals: clientId } },
      select: { id: true },
    });
    const ids = grants.map((g) => g.id);
    await tx.oAuthPayload.deleteMany({
      where: { OR: [{ grantId: { in: ids } }, { model: 'Grant', id: { in: ids } }] },
    });
    return ids.length;
  }

  /** One grant, if it is the person's and unexpired. */
  async one(accountId: string, grantId: string, now: Date): Promise<GrantRow | undefined> {
    const row = await this.db.oAuthPayload.findUnique({
      where: { model_id: { model: 'Grant', id: grantId } },
      select: { id: true, payload: true, expiresAt: true },
    });
    if (!row || (row.expiresAt && row.expiresAt <= now)) return undefined;
    const [grant] = await this.withApplications([row]);
    return grant?.accountId === accountId ? grant : undefined;
  }

  private async withApplications(
    rows: { id: string; payload: unknown; expiresAt: Date | null }[],
  ): Promise<GrantRow[]> {
    const grants = rows.map((row) => {
      const p = (row.payload ?? {}) as GrantPayload;
      const resources = (p.resources && typeof p.resources === 'object' ? p.resources : {}) as Record<string, unknown>;
      const scopes = [
        ...new Set(Object.values(resources).flatMap((s) => (typeof s === 'string' ? s.split(' ') : []))),
      ].filter((s) => s !== '');
      return {
        grantId: row.id,
        clientId: typeof p.clientId === 'string' ? p.clientId : '',
        accountId: typeof p.accountId === 'string' ? p.accountId : '',
        scopes,
        createdAt: new Date((typeof p.iat === 'number' ? p.iat : 0) * 1_000),
        expiresAt: row.expiresAt,
      };
    });
    const clientIds = [...new Set(grants.map((g) => g.clientId))];
    const apps = await this.db.application.findMany({
      where: { clientId: { in: clientIds } },
      select: { id: true, orgId: true, name: true, clientId: true },
    });
    const byClient = new Map(apps.map((a) => [a.clientId, { id: a.id, orgId: a.orgId, name: a.name }]));
    return grants
      .map((g) => ({ ...g, application: byClient.get(g.clientId) }))
      .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
  }
}
