import { randomBytes } from 'node:crypto';

import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { passkeyChallenge } from '@context-gateway/crypto';
import { AppError } from '@context-gateway/errors';
import { integrationManifests } from '@context-gateway/integration-catalog';
import { RpcClient } from '@context-gateway/messaging';
import {
  ActorKind,
  AuditAction,
  AuditOutcome,
  AuditPhase,
  ConnectionStatus,
  PolicyEffect,
  type PolicyRule,
  rpc,
  SyncRunState,
} from '@context-gateway/proto';
import { recordType } from '@context-gateway/record-catalog';
import { LOGGER } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';

import type { SignedInPerson } from '../accounts/accounts.service.js';

/** A scope as the person reads it: the consent page's words, with the scope itself beside them. */
export interface ScopeView {
  scope: string;
  description: string;
}

interface GrantView {
  applicationId: string;
  applicationName: string;
  scopes: ScopeView[];
  grantedAt: Date | undefined;
  /** The application's last allowed read of this connection that the audit log holds. */
  lastReadAt: Date | undefined;
}

export interface ConnectionView {
  id: string;
  integration: string;
  integrationName: string;
  /** An OAuth source: the person can sign in to it again from the portal (Reconnect). */
  reconnectable: boolean;
  status: 'active' | 'needs_reauth' | 'revoked' | 'deleting' | 'deleted';
  createdAt: Date | undefined;
  sync: {
    state: 'idle' | 'queued' | 'running' | 'failed' | 'needs_reauth' | 'unknown';
    lastSuccessAt: Date | undefined;
    nextRunAt: Date | undefined;
    lastError: string | undefined;
    recordsSynced: number;
    skipped: number;
  };
  grants: GrantView[];
  /** Live records per type in the Personal Server (undefined: the shard did not answer in time). */
  stored: { type: string; count: number; description: string }[] | undefined;
}

export interface AccessView {
  eventId: string;
  /** What the signed log must say of this row (the browser checks it against the entry's bytes). */
  applicationId: string;
  outcomeName: string;
  at: Date | undefined;
  applicationName: string;
  action: string;
  what: string;
  outcome: 'allowed' | 'denied' | 'failed' | 'other';
  decidingLayer: string;
}

/** One of the person's own rules (the user layer), in words. */
export interface RuleView {
  id: string;
  effect: 'allow' | 'deny';
  what: string;
  applicationName: string | undefined;
  resources: string[];
}

/** Something a rule can be about, offered in the rule form: a whole integration or one capability. */
export interface RuleTarget {
  value: string;
  label: string;
}

export interface RuleInput {
  effect: 'allow' | 'deny';
  /** `integration:<key>` or `capability:<capability>`. */
  target: string;
  applicationId?: string;
  resource?: string;
}

const CONNECTION_STATUS: Record<number, ConnectionView['status']> = {
  [ConnectionStatus.ACTIVE]: 'active',
  [ConnectionStatus.NEEDS_REAUTH]: 'needs_reauth',
  [ConnectionStatus.REVOKED]: 'revoked',
  [ConnectionStatus.DELETING]: 'deleting',
  [ConnectionStatus.DELETED]: 'deleted',
};

const SYNC_STATE: Record<number, ConnectionView['sync']['state']> = {
  [SyncRunState.IDLE]: 'idle',
  [SyncRunState.QUEUED]: 'queued',
  [SyncRunState.RUNNING]: 'running',
  [SyncRunState.FAILED]: 'failed',
  [SyncRunState.NEEDS_REAUTH]: 'needs_reauth',
};

const ACTIONS: Partial<Record<AuditAction, string>> = {
  [AuditAction.DATA_QUERY]: 'Read data',
  [AuditAction.CAPABILITY_INVOCATION]: 'Used a tool',
  [AuditAction.CREDENTIAL_ISSUED]: 'Got a short-lived credential',
  [AuditAction.CONNECT_SESSION]: 'Asked to connect',
  [AuditAction.CONSENT]: 'Consent',
  [AuditAction.GRANT]: 'Grant',
  [AuditAction.REVOCATION]: 'Revocation',
  [AuditAction.POLICY_CHANGE]: 'Rule change',
  [AuditAction.SIGN_IN]: 'Sign-in',
  [AuditAction.AUDIT_READ]: 'Read the access log',
};

/** The audit's `policy.decided_by` in the person's words. */
const LAYERS: Partial<Record<string, string>> = {
  org: 'your organization',
  user: 'your rules',
  app: 'the application',
};

const date = (ts: Parameters<typeof timestampDate>[0] | undefined) => (ts ? timestampDate(ts) : undefined);

/**
 * What the person's portal shows, gathered for one signed-in person: their connections (from
 * the broker, which resolves the session itself), each application's grant with the
 * application's name and each scope in the consent page's words, the sync state, and the
 * access log of their data. Nothing here trusts the browser for who the person is.
 */
/** How long a passkey's endorsement may take to sign (the prompt, then the post). */
const TRUST_WINDOW_MS = 5 * 60_000;

@Injectable()
export class PortalService {
  readonly #integrations = new Map(integrationManifests().map((m) => [m.key, m]));

  constructor(
    private readonly rpcClient: RpcClient,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** `counts: false` skips asking the shards what they hold (`stored` is then undefined). */
  async connections(person: SignedInPerson, options: { counts?: boolean } = {}): Promise<ConnectionView[]> {
    const { connections } = await this.rpcClient.request(rpc.broker.listUserConnections, {
      personSessionToken: person.sessionToken,
    });
    const applicationName = this.applicationNames();
    const lastReads = await this.lastReads(person);
    return Promise.all(
      connections.map(async ({ connection, grants }): Promise<ConnectionView> => {
        if (!connection) throw new AppError('internal', 'broker answered a connection without its body');
        const manifest = this.#integrations.get(connection.integration);
        const [sync, stored] = await Promise.all([
          this.syncState(connection.id),
          options.counts === false ? undefined : this.stored(person, connection.id, connection.status),
        ]);
        return {
          id: connection.id,
          integration: connection.integration,
          integrationName: manifest?.displayName ?? connection.integration,
          reconnectable: manifest?.authType === 'oauth2',
          status: CONNECTION_STATUS[connection.status] ?? 'revoked',
          createdAt: date(connection.createdAt),
          sync,
          stored,
          grants: await Promise.all(
            grants
              .filter((g) => g.active)
              .map(async (g) => ({
                applicationId: g.applicationId,
                applicationName: (await applicationName(g.orgId, g.applicationId)) ?? 'A removed application',
                scopes: g.scopes.map((scope) => this.scope(connection.integration, scope)),
                grantedAt: date(g.grantedAt),
                lastReadAt: lastReads.get(`${connection.id}/${g.applicationId}`),
              })),
          ),
        };
      }),
    );
  }

  /**
   * When each application last read each of the person's connections, from the newest
   * allowed data queries in the audit log. The page stays usable without the audit service.
   */
  private async lastReads(person: SignedInPerson): Promise<Map<string, Date>> {
    const last = new Map<string, Date>();
    try {
      const { entries } = await this.rpcClient.request(
        rpc.audit.searchEntries,
        { userId: person.userId, action: AuditAction.DATA_QUERY, outcome: AuditOutcome.ALLOWED, limit: 500 },
        { timeoutMs: 2_000 },
      );
      // Newest first: the first entry seen for a pair is its last read.
      for (const { event } of entries) {
        const key = `${event?.connectionId}/${event?.applicationId}`;
        const at = date(event?.occurredAt);
        if (event?.connectionId && at && !last.has(key)) last.set(key, at);
      }
    } catch (error) {
      this.logger.warn({ errorCode: AppError.from(error).code }, 'portal: last reads unavailable');
    }
    return last;
  }

  /** One of the person's connections, from the broker alone (the broker resolves the session); undefined when not theirs. */
  async ownConnection(
    person: SignedInPerson,
    connectionId: string,
  ): Promise<
    { id: string; integration: string; integrationName: string; status: ConnectionView['status'] } | undefined
  > {
    const { connections } = await this.rpcClient.request(rpc.broker.listUserConnections, {
      personSessionToken: person.sessionToken,
    });
    const found = connections.find((c) => c.connection?.id === connectionId)?.connection;
    if (!found) return undefined;
    return {
      id: found.id,
      integration: found.integration,
      integrationName: this.integrationName(found.integration),
      status: CONNECTION_STATUS[found.status] ?? 'revoked',
    };
  }

  /** The last accesses to the person's data, newest first (the audit log's entries for them). */
  async accesses(person: SignedInPerson, limit = 200): Promise<AccessView[]> {
    const { entries } = await this.rpcClient.request(rpc.audit.searchEntries, { userId: person.userId, limit });
    // The log stays readable while identity is away: a name it cannot give is a removed application's.
    const applicationName = this.applicationNames({ tolerateOutage: true });
    const rows = await Promise.all(
      entries.map(async ({ event, recordedAt }) => {
        // An intent is followed by its outcome: the outcome is the row a person reads. Only what
        // an application did is an access (the person's own sign-ins and reads are not).
        if (!event || event.phase === AuditPhase.INTENT || !event.applicationId) return undefined;
        // What the person did themselves (revoking an application, say) is theirs, not the application's.
        const byPerson = event.actorKind === ActorKind.USER_SESSION;
        const name = byPerson ? 'You' : await applicationName(event.orgId, event.applicationId);
        return {
          eventId: event.eventId,
          applicationId: event.applicationId,
          outcomeName: `AUDIT_OUTCOME_${AuditOutcome[event.outcome]}`,
          at: date(event.occurredAt) ?? date(recordedAt),
          applicationName: name ?? 'A removed application',
          action: ACTIONS[event.action] ?? 'Other',
          what: [
            event.integration ? this.integrationName(event.integration) : '',
            event.capability,
            event.resource === '*' ? '' : event.resource,
          ]
            .filter(Boolean)
            .join(' · '),
          outcome:
            event.outcome === AuditOutcome.ALLOWED
              ? 'allowed'
              : event.outcome === AuditOutcome.DENIED
                ? 'denied'
                : event.outcome === AuditOutcome.ERROR
                  ? 'failed'
                  : 'other',
          decidingLayer: LAYERS[event.policy?.decidedBy ?? ''] ?? '',
        } satisfies AccessView;
      }),
    );
    return rows
      .filter((r): r is AccessView => r !== undefined)
      .sort((a, b) => (b.at?.getTime() ?? 0) - (a.at?.getTime() ?? 0));
  }

  /** The person's own rules, each in words (what it is about from the catalog, the application by name). */
  async rules(person: SignedInPerson, connections: ConnectionView[]): Promise<RuleView[]> {
    const { rules } = await this.rpcClient.request(rpc.policy.listUserRules, { userId: person.userId });
    const names = new Map(connections.flatMap((c) => c.grants.map((g) => [g.applicationId, g.applicationName])));
    return rules.map((r: PolicyRule) => ({
      id: r.id,
      effect: r.effect === PolicyEffect.DENY ? 'deny' : 'allow',
      what: r.capability
        ? this.capabilityWords(r.capability)
        : `Everything from ${this.integrationName(r.integration)}`,
      applicationName: r.applicationId ? (names.get(r.applicationId) ?? 'An application you no longer use') : undefined,
      resources: r.resources,
    }));
  }

  /** What the person's rules can be about: each connected integration whole, and each of its capabilities. */
  ruleTargets(connections: ConnectionView[]): { integrationName: string; targets: RuleTarget[] }[] {
    const integrations = [...new Set(connections.map((c) => c.integration))];
    return integrations.flatMap((key) => {
      const manifest = this.#integrations.get(key);
      if (!manifest) return [];
      const capabilities = [...Object.entries(manifest.scopes), ...Object.entries(manifest.tools)];
      return [
        {
          integrationName: manifest.displayName,
          targets: [
            { value: `integration:${key}`, label: `Everything from ${manifest.displayName}` },
            ...capabilities.map(([capability, spec]) => ({
              value: `capability:${capability}`,
              label: `${spec.description} (${capability})`,
            })),
          ],
        },
      ];
    });
  }

  async addRule(person: SignedInPerson, input: RuleInput): Promise<void> {
    const [kind, ...rest] = input.target.split(':');
    const subject = rest.join(':');
    if ((kind !== 'integration' && kind !== 'capability') || !subject)
      throw new AppError('validation_failed', 'Choose what the rule is about');
    await this.rpcClient.request(rpc.policy.putUserRule, {
      userId: person.userId,
      rule: {
        effect: input.effect === 'deny' ? PolicyEffect.DENY : PolicyEffect.ALLOW,
        integration: kind === 'integration' ? subject : '',
        capability: kind === 'capability' ? subject : '',
        resources: input.resource ? [input.resource] : [],
        applicationId: input.applicationId ?? '',
        description: 'Added in the portal',
      },
    });
  }

  async removeRule(person: SignedInPerson, ruleId: string): Promise<void> {
    await this.rpcClient.request(rpc.policy.deleteUserRule, { userId: person.userId, ruleId });
  }

  /**
   * Looks up applications' names for one page, each application once however many rows name
   * it. `undefined` is an application identity no longer knows (removed); identity failing is
   * an error, unless `tolerateOutage` (then the name is unknown too).
   */
  private applicationNames(options: { tolerateOutage?: boolean } = {}) {
    const names = new Map<string, Promise<string | undefined>>();
    return (orgId: string, applicationId: string): Promise<string | undefined> => {
      let name = names.get(applicationId);
      if (!name) {
        name = this.rpcClient
          .request(rpc.identity.getApplication, { orgId, applicationId })
          .then((r) => r.application?.name || undefined)
          .catch((error: unknown) => {
            if (options.tolerateOutage || AppError.from(error).status < 500) return undefined;
            throw error;
          });
        names.set(applicationId, name);
      }
      return name;
    };
  }

  private integrationName(key: string): string {
    return this.#integrations.get(key)?.displayName ?? key;
  }

  private capabilityWords(capability: string): string {
    const manifest = this.#integrations.get(capability.split(':')[0] ?? '');
    const spec = manifest?.scopes[capability] ?? manifest?.tools[capability];
    return spec ? `${spec.description} (${capability})` : capability;
  }

  /** The person's passkeys and live sessions (identity answers for the session's own person). */
  async security(person: SignedInPerson) {
    const [r, pins] = await Promise.all([
      this.rpcClient.request(rpc.identity.getAccountSecurity, { sessionToken: person.sessionToken }),
      this.pins(person),
    ]);
    return {
      passkeys: r.passkeys.map((p) => ({
        id: p.id,
        credentialId: p.credentialId,
        name: p.name,
        createdAt: date(p.createdAt),
        lastUsedAt: date(p.lastUsedAt),
        synced: p.deviceType === 'multiDevice',
        // Undefined: nothing is pinned yet (the first consent pins every passkey), or the Personal Server did not answer.
        trusted: pins?.pinned ? pins.credentialIds.includes(p.credentialId) : undefined,
      })),
      sessions: r.sessions.map((s) => ({
        id: s.id,
        createdAt: date(s.createdAt),
        expiresAt: date(s.expiresAt),
        method: s.method,
        current: s.current,
      })),
    };
  }

  /**
   * Removes a passkey at identity, then from what the person's Personal Server trusts (a
   * passkey identity no longer holds signs nothing there anyway, so a lost unpinning is
   * harmless). Never the only trusted passkey while others remain (they could sign nothing):
   * `conflict`, and the person trusts another one first. A Personal Server that does not
   * answer does not stop the removal of a passkey, which may be a lost device's.
   */
  async removePasskey(person: SignedInPerson, passkeyId: string): Promise<void> {
    const [{ passkeys }, pins] = await Promise.all([
      this.rpcClient.request(rpc.identity.getAccountSecurity, { sessionToken: person.sessionToken }),
      this.pins(person),
    ]);
    const removed = passkeys.find((p) => p.id === passkeyId);
    // Only pins of passkeys the person still has count: those are the ones that can sign.
    const usable = pins?.credentialIds.filter((id) => passkeys.some((p) => p.credentialId === id)) ?? [];
    if (removed && pins?.pinned && usable.length === 1 && usable[0] === removed.credentialId && passkeys.length > 1)
      throw new AppError(
        'conflict',
        'This is the only passkey your Personal Server trusts: trust another of your passkeys first, then remove this one',
      );
    await this.rpcClient.request(rpc.identity.removePasskey, { sessionToken: person.sessionToken, passkeyId });
    if (removed && pins?.credentialIds.includes(removed.credentialId))
      await this.rpcClient
        .request(rpc.personalServer.unpinPasskey, { userId: person.userId, credentialId: removed.credentialId })
        .catch((error: unknown) =>
          this.logger.warn(
            { errorCode: AppError.from(error).code },
            'the Personal Server did not unpin a removed passkey (it signs nothing there: identity no longer holds it)',
          ),
        );
  }

  /**
   * What a pinned passkey signs to have the person's Personal Server trust `credentialId`
   * too (libs/crypto passkey-statement.ts), or `needed: false` when nothing is pinned yet or
   * it is trusted already. The key comes from identity; the Personal Server reads it there
   * again and checks the signature covers exactly it.
   */
  async trustOptions(person: SignedInPerson, credentialId: string) {
    const pins = await this.pins(person, { required: true });
    if (!pins?.pinned || pins.credentialIds.includes(credentialId)) return { needed: false as const };
    const { passkeys } = await this.rpcClient.request(rpc.identity.listUserPasskeys, { userId: person.userId });
    const added = passkeys.find((p) => p.credentialId === credentialId);
    if (!added) throw new AppError('not_found', 'You have no such passkey');
    const nonce = randomBytes(16).toString('base64url');
    const notAfter = new Date(Date.now() + TRUST_WINDOW_MS);
    return {
      needed: true as const,
      nonce,
      notAfter: notAfter.toISOString(),
      options: {
        challenge: passkeyChallenge({
          userId: person.userId,
          credentialId,
          publicKey: added.publicKey,
          nonce,
          notAfter,
        }),
        allowCredentials: pins.credentialIds.map((id) => ({ id, type: 'public-key' as const })),
        userVerification: 'required' as const,
        timeout: TRUST_WINDOW_MS,
      },
    };
  }

  /** The endorsement signed: the Personal Server verifies it and pins the passkey. */
  async trust(
    person: SignedInPerson,
    credentialId: string,
    proof: { nonce: string; notAfter: Date; assertionJson: string },
  ): Promise<boolean> {
    const { pinned } = await this.rpcClient.request(rpc.personalServer.pinPasskey, {
      userId: person.userId,
      credentialId,
      endorsement: {
        nonce: proof.nonce,
        notAfter: timestampFromDate(proof.notAfter),
        assertionJson: proof.assertionJson,
      },
    });
    return pinned;
  }

  /**
   * The passkeys the person's Personal Server trusts. For a page, undefined when it does not
   * answer (the page says nothing of trust); `required` for an action, which then fails.
   */
  private async pins(person: SignedInPerson, options: { required?: boolean } = {}) {
    try {
      return await this.rpcClient.request(rpc.personalServer.listPinnedPasskeys, { userId: person.userId });
    } catch (error) {
      if (options.required) throw error;
      this.logger.warn({ errorCode: AppError.from(error).code }, 'the Personal Server did not list pinned passkeys');
      return undefined;
    }
  }

  async renamePasskey(person: SignedInPerson, passkeyId: string, name: string): Promise<void> {
    await this.rpcClient.request(rpc.identity.renamePasskey, { sessionToken: person.sessionToken, passkeyId, name });
  }

  async signOutOthers(person: SignedInPerson): Promise<number> {
    const r = await this.rpcClient.request(rpc.identity.signOutOtherSessions, { sessionToken: person.sessionToken });
    return r.signedOut;
  }

  /** The key that signs the audit log's checkpoints (undefined before the first checkpoint). */
  async logKey(): Promise<{ keyName: string; publicKey: string; origin: string } | undefined> {
    try {
      const answer = await this.rpcClient.request(rpc.audit.getCheckpoint, { treeSize: 0n });
      return {
        keyName: answer.keyName,
        publicKey: Buffer.from(answer.publicKey).toString('base64'),
        origin: answer.checkpoint?.origin ?? '',
      };
    } catch (error) {
      if (AppError.from(error).status < 500) return undefined;
      throw error;
    }
  }

  /** The person signs in to the source again for this connection of theirs: where the browser goes, and the state to bind. */
  async reconnect(person: SignedInPerson, connectionId: string): Promise<{ redirectUrl: string; oauthState: string }> {
    return this.rpcClient.request(rpc.broker.startReconnect, {
      personSessionToken: person.sessionToken,
      connectionId,
    });
  }

  async revoke(person: SignedInPerson, connectionId: string, applicationId: string): Promise<void> {
    await this.rpcClient.request(rpc.broker.revokeGrant, {
      connectionId,
      applicationId,
      personSessionToken: person.sessionToken,
    });
  }

  async remove(person: SignedInPerson, connectionId: string): Promise<'deleted' | 'deleting'> {
    const removed = await this.rpcClient.request(rpc.broker.removeConnection, {
      connectionId,
      personSessionToken: person.sessionToken,
    });
    return removed.status === ConnectionStatus.DELETED ? 'deleted' : 'deleting';
  }

  /**
   * Deletes everything of the person's, in the order that leaves nothing reachable when a
   * step fails half-way (the person tries again and it carries on): every connection
   * (the broker revokes its grants and has the shard shred its records and key), their own
   * rules, then the identity account with its OAuth grants, passkeys and sessions. The audit
   * log keeps its entries.
   */
  async deleteAccount(person: SignedInPerson): Promise<{ connections: number; rules: number }> {
    // The person's other browsers and devices can start nothing new meanwhile.
    await this.signOutOthers(person);
    let deleted = 0;
    // Listed again after each pass: a consent allowed in another tab meanwhile is caught too.
    // The account goes only once a listing shows nothing left.
    for (let pass = 0; ; pass++) {
      const { connections } = await this.rpcClient.request(rpc.broker.listUserConnections, {
        personSessionToken: person.sessionToken,
      });
      // One already being deleted is the broker's to finish (it retries the shard itself).
      const live = connections.flatMap(({ connection }) =>
        connection && connection.status !== ConnectionStatus.DELETED && connection.status !== ConnectionStatus.DELETING
          ? [connection.id]
          : [],
      );
      if (live.length === 0) break;
      if (pass === 3)
        throw new AppError('conflict', 'New connections keep appearing while the account is deleted: try again');
      for (const connectionId of live) {
        // Deleted meanwhile (a second request): already done.
        const removed = await this.remove(person, connectionId).then(
          () => true,
          (error: unknown) => {
            if (AppError.from(error).code === 'connection_not_found') return false;
            throw error;
          },
        );
        if (removed) deleted++;
      }
    }
    const { rules } = await this.rpcClient.request(rpc.policy.listUserRules, { userId: person.userId });
    for (const rule of rules)
      await this.removeRule(person, rule.id).catch((error: unknown) => {
        if (AppError.from(error).status !== 404) throw error;
      });
    await this.rpcClient.request(rpc.identity.deleteAccount, { sessionToken: person.sessionToken });
    return { connections: deleted, rules: rules.length };
  }

  private scope(integration: string, scope: string): ScopeView {
    return { scope, description: this.#integrations.get(integration)?.scopes[scope]?.description ?? scope };
  }

  /** What the connection's Personal Server holds, per type; the page stays usable without it. */
  private async stored(
    person: SignedInPerson,
    connectionId: string,
    status: ConnectionStatus,
  ): Promise<ConnectionView['stored']> {
    if (status === ConnectionStatus.DELETED || status === ConnectionStatus.DELETING) return [];
    try {
      const { counts } = await this.rpcClient.request(
        rpc.personalServer.countRecords,
        { userId: person.userId, connectionId },
        { timeoutMs: 2_000 },
      );
      return counts.map((c) => ({
        type: c.type,
        count: Number(c.count),
        description: recordType(c.type)?.description ?? '',
      }));
    } catch (error) {
      this.logger.warn({ errorCode: AppError.from(error).code }, 'portal: record counts unavailable');
      return undefined;
    }
  }

  /** The sync state; a sync-worker that does not answer leaves the page usable (shown as unknown). */
  private async syncState(connectionId: string): Promise<ConnectionView['sync']> {
    try {
      const s = await this.rpcClient.request(rpc.sync.getState, { connectionId }, { timeoutMs: 2_000 });
      return {
        state: SYNC_STATE[s.state] ?? 'unknown',
        lastSuccessAt: date(s.lastSuccessAt),
        nextRunAt: date(s.nextRunAt),
        lastError: s.lastError || undefined,
        recordsSynced: Number(s.recordsSynced),
        skipped: s.lastRunSkippedTotal,
      };
    } catch {
      return {
        state: 'unknown',
        lastSuccessAt: undefined,
        nextRunAt: undefined,
        lastError: undefined,
        recordsSynced: 0,
        skipped: 0,
      };
    }
  }
}
