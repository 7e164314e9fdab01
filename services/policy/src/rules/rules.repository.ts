import { AppError } from '@context-gateway/errors';
import { Inject, Injectable } from '@nestjs/common';

import { POLICY_DB, type PolicyDb, type Tx } from '../database/database.module.js';
import type {
  Application,
  Grant,
  McpServer,
  McpVirtualServer,
  PolicyRule as RuleRow,
} from '../generated/prisma/client.js';
import type { McpServerAuth } from './mcp-servers.js';
import { mcpVirtualServerBytes } from './mcp-tools.js';

export type NewRuleRow = Omit<RuleRow, 'createdAt'>;

/** Everything a snapshot of one org is computed from. */
export interface OrgSources {
  explicit: RuleRow[];
  integrations: string[];
  applications: Application[];
  grants: Grant[];
  mcpServers: McpServer[];
  mcpVirtualServers: McpVirtualServer[];
}

/** The name of policy's one CONTROL-stream cursor row (see ControlCursor in schema.prisma). */
const CONTROL_CURSOR = 'control';

/** The only place policy touches Prisma. Methods that write take the caller's transaction. */
@Injectable()
export class RulesRepository {
  constructor(@Inject(POLICY_DB) private readonly db: PolicyDb) {}

  /** Runs `work` in one transaction: a change and its revision bump commit together or not at all. */
  transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
    return this.db.$transaction((tx) => work(tx));
  }

  /**
   * Bumps an org's revision in the caller's transaction. The row lock taken by the upsert
   * also serializes concurrent changes of one org, so revisions are handed out in commit order.
   */
  async bumpRevision(tx: Tx, orgId: string): Promise<bigint> {
    const rows = await tx.$queryRaw<{ revision: bigint }[]>`
      INSERT INTO policy_revisions (org_id, revision, updated_at) VALUES (${orgId}::uuid, 1, now())
      ON CONFLICT (org_id) DO UPDATE SET revision = policy_revisions.revision + 1, updated_at = now()
      RETURNING revision`;
    const [row] = rows;
    // An upsert with RETURNING always yields its row.
    if (!row) throw new AppError('internal', `No revision row returned for org ${orgId}`);
    return BigInt(row.revision);
  }

  /**
   * Serializes, per user, "a user rule changed" with "a grant of that user was applied": the
   * first finds the orgs to bump through the user's grants, so a grant committing in between
   * could otherwise land in an org whose snapshot misses the rule without a new revision.
   */
  async lockUser(tx: Tx, userId: string): Promise<void> {
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext('policy-user'), hashtext(${userId}))`;
  }

  async revision(orgId: string): Promise<bigint> {
    const row = await this.db.policyRevision.findUnique({ where: { orgId } });
    return row?.revision ?? 0n;
  }

  async controlSeq(): Promise<bigint> {
    const row = await this.db.controlCursor.findUnique({ where: { name: CONTROL_CURSOR } });
    return row?.seq ?? 0n;
  }

  /** Never moves backwards: a redelivered old event must not un-say what was applied after it. */
  async advanceControlSeq(tx: Tx, seq: number): Promise<void> {
    await tx.$executeRaw`
      INSERT INTO control_cursor (name, seq) VALUES (${CONTROL_CURSOR}, ${BigInt(seq)})
      ON CONFLICT (name) DO UPDATE SET seq = GREATEST(control_cursor.seq, EXCLUDED.seq)`;
  }

  insertRule(tx: Tx, rule: NewRuleRow): Promise<RuleRow> {
    return tx.policyRule.create({ data: rule });
  }

  findRule(tx: Tx, id: string): Promise<RuleRow | null> {
    return tx.policyRule.findUnique({ where: { id } });
  }

  async deleteRule(tx: Tx, id: string): Promise<void> {
    await tx.policyRule.delete({ where: { id } });
  }

  listOrgRules(orgId: string, filter: { layer?: string; applicationId?: string }): Promise<RuleRow[]> {
    return this.db.policyRule.findMany({
      where: {
        orgId,
        ...(filter.layer ? { layer: filter.layer } : {}),
        ...(filter.applicationId ? { layer: 'application', subject: filter.applicationId } : {}),
      },
      orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
    });
  }

  listUserRules(userId: string): Promise<RuleRow[]> {
    return this.db.policyRule.findMany({
      where: { orgId: null, layer: 'user', subject: userId },
      orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
    });
  }

  /** Orgs whose applications this user granted (now or before): their snapshots carry the user's rules. */
  async orgsOfUser(tx: Tx, userId: string): Promise<string[]> {
    const rows = await tx.grant.findMany({ where: { userId }, select: { orgId: true }, distinct: ['orgId'] });
    return rows.map((r) => r.orgId).sort();
  }

  async integrations(orgId: string): Promise<string[]> {
    const rows = await this.db.orgIntegration.findMany({ where: { orgId }, orderBy: { integration: 'asc' } });
    return rows.map((r) => r.integration);
  }

  async replaceIntegrations(tx: Tx, orgId: string, integrations: readonly string[]): Promise<void> {
    await tx.orgIntegration.deleteMany({ where: { orgId } });
    if (integrations.length > 0)
      await tx.orgIntegration.createMany({ data: integrations.map((integration) => ({ orgId, integration })) });
  }

  async upsertMcpServer(
    tx: Tx,
    server: {
      orgId: string;
      integration: string;
      url: string;
      resourceArguments: Record<string, string>;
      auth: McpServerAuth;
    },
  ): Promise<McpServer> {
    const { orgId, integration, url, resourceArguments, auth } = server;
    const current = await tx.mcpServer.findUnique({ where: { orgId_integration: { orgId, integration } } });
    // A new URL may be another server: nothing of the old one's tools carries over.
    const fresh =
      current && current.url !== url
        ? { toolsJson: '[]', toolsDigest: '', toolsSeenJson: '{}', toolsReadAt: null }
        : {};
    return tx.mcpServer.upsert({
      where: { orgId_integration: { orgId, integration } },
      create: { orgId, integration, url, resourceArguments, auth },
      update: { url, resourceArguments, auth, ...fresh },
    });
  }

  mcpServers(orgId: string): Promise<McpServer[]> {
    return this.db.mcpServer.findMany({ where: { orgId }, orderBy: { integration: 'asc' } });
  }

  async deleteMcpServer(tx: Tx, orgId: string, integration: string): Promise<McpServer | undefined> {
    const found = await tx.mcpServer.findUnique({ where: { orgId_integration: { orgId, integration } } });
    if (!found) return undefined;
    await tx.mcpServer.delete({ where: { orgId_integration: { orgId, integration } } });
    return found;
  }

  /** The server's row, locked until the transaction ends (tool reads of one server apply one at a time). */
  async lockMcpServer(tx: Tx, orgId: string, integration: string): Promise<McpServer | undefined> {
    const locked = await tx.$queryRaw<{ org_id: string }[]>`
      SELECT org_id FROM mcp_servers WHERE org_id = ${orgId}::uuid AND integration = ${integration} FOR UPDATE`;
    if (locked.length === 0) return undefined;
    return (await tx.mcpServer.findUnique({ where: { orgId_integration: { orgId, integration } } })) ?? undefined;
  }

  /**
   * What the org's MCP part of the snapshot holds besides `except` (one server's tools or one
   * virtual server): bytes (UTF-8) of the stored tool lists and of the virtual servers
   * (mcpVirtualServerBytes), and how many virtual servers.
   */
  async otherMcpSnapshot(
    tx: Tx,
    orgId: string,
    except: { integration?: string; virtualServer?: string },
  ): Promise<{ bytes: number; virtualServers: number }> {
    const [tools, servers] = await Promise.all([
      tx.$queryRaw<{ bytes: bigint | null }[]>`
        SELECT sum(octet_length(tools_json))::bigint AS bytes FROM mcp_servers
        WHERE org_id = ${orgId}::uuid AND integration <> ${except.integration ?? ''}`,
      tx.mcpVirtualServer.findMany({
        where: { orgId, name: { not: except.virtualServer ?? '' } },
        select: { name: true, description: true, integrations: true, tools: true },
      }),
    ]);
    const serversBytes = servers.reduce((sum, server) => sum + mcpVirtualServerBytes(server), 0);
    return { bytes: Number(tools[0]?.bytes ?? 0n) + serversBytes, virtualServers: servers.length };
  }

  storeMcpTools(
    tx: Tx,
    orgId: string,
    integration: string,
    merged: { json: string; digest: string; seenJson: string },
    changed: boolean,
    now: Date,
  ): Promise<McpServer> {
    return tx.mcpServer.update({
      where: { orgId_integration: { orgId, integration } },
      data: {
        ...(changed ? { toolsJson: merged.json, toolsDigest: merged.digest } : {}),
        toolsSeenJson: merged.seenJson,
        toolsReadAt: now,
      },
    });
  }

  findApplication(id: string): Promise<Application | null> {
    return this.db.application.findUnique({ where: { id } });
  }

  /** Stores the event's view of an application unless a newer revision is already stored. Returns whether it applied. */
  async upsertApplicationIfNewer(tx: Tx, app: Application): Promise<boolean> {
    const current = await tx.application.findUnique({ where: { id: app.id } });
    if (current && current.revision >= app.revision) return false;
    await tx.application.upsert({ where: { id: app.id }, create: app, update: app });
    return true;
  }

  async upsertGrantIfNewer(tx: Tx, grant: Grant): Promise<boolean> {
    const current = await tx.grant.findUnique({ where: { id: grant.id } });
    if (current && current.revision >= grant.revision) return false;
    await tx.grant.upsert({ where: { id: grant.id }, create: grant, update: grant });
    return true;
  }

  /** One org's rule sources, in one read: explicit rules (the org's and its grantors' own), integrations, apps, grants. */
  async orgSources(orgId: string): Promise<OrgSources> {
    return this.db.$transaction(async (tx) => {
      const grants = await tx.grant.findMany({ where: { orgId }, orderBy: { id: 'asc' } });
      const users = [...new Set(grants.map((g) => g.userId))];
      const [explicit, integrations, applications, mcpServers, mcpVirtualServers] = await Promise.all([
        tx.policyRule.findMany({
          where: {
            OR: [{ orgId }, ...(users.length > 0 ? [{ orgId: null, layer: 'user', subject: { in: users } }] : [])],
          },
          orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
        }),
        tx.orgIntegration.findMany({ where: { orgId }, orderBy: { integration: 'asc' } }),
        tx.application.findMany({ where: { orgId }, orderBy: { id: 'asc' } }),
        tx.mcpServer.findMany({ where: { orgId }, orderBy: { integration: 'asc' } }),
        tx.mcpVirtualServer.findMany({ where: { orgId }, orderBy: { name: 'asc' } }),
      ]);
      return {
        explicit,
        integrations: integrations.map((i) => i.integration),
        applications,
        grants,
        mcpServers,
        mcpVirtualServers,
      };
    });
  }
}
