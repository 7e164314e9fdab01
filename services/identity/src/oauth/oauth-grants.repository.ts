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

  /**
   * Every unexpired grant of one application, newest first: those issued to its client id, and
   * for a metadata-URL client those bound to it (the URL's grants in other organizations are
   * theirs, never this application's).
   */
  async ofApplication(app: { id: string; clientId: string }, now: Date): Promise<GrantRow[]> {
    const rows = await this.db.oAuthPayload.findMany({
      where: {
        model: 'Grant',
        OR: [{ expiresAt: null }, { expiresAt: { gt: now } }],
        AND: [
          {
            OR: [{ payload: { path: ['clientId'], equals: app.clientId } }, { id: { in: await this.boundTo(app.id) } }],
          },
        ],
      },
      select: { id: true, payload: true, expiresAt: true },
      take: 1_000,
    });
    return this.withApplications(rows);
  }

  /** Deletes every grant of an application and everything issued under them; returns how many grants. */
  async revokeApplication(app: { id: string; clientId: string }, tx: Tx): Promise<number> {
    const grants = await tx.oAuthPayload.findMany({
      where: {
        model: 'Grant',
        OR: [{ payload: { path: ['clientId'], equals: app.clientId } }, { id: { in: await this.boundTo(app.id, tx) } }],
      },
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
    // Metadata-URL clients: the application is the grant's binding, not the (shared) client id.
    const bindings = await this.db.oAuthGrantApplication.findMany({
      where: { grantId: { in: grants.map((g) => g.grantId) } },
      select: { grantId: true, application: { select: { id: true, orgId: true, name: true } } },
    });
    const byGrant = new Map(bindings.map((b) => [b.grantId, b.application]));
    return grants
      .map((g) => ({ ...g, application: byGrant.get(g.grantId) ?? byClient.get(g.clientId) }))
      .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
  }

  /** The grants bound to an application (metadata-URL clients). */
  private async boundTo(applicationId: string, tx: Tx = this.db): Promise<string[]> {
    const rows = await tx.oAuthGrantApplication.findMany({ where: { applicationId }, select: { grantId: true } });
    return rows.map((r) => r.grantId);
  }
}
