import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { PolicyEffect, rpc } from '@context-gateway/proto';
import { Injectable } from '@nestjs/common';

import type { SignedInPerson } from '../accounts/accounts.service.js';
import { ShardRouter } from '../records/shard-router.js';
import { PortalService } from './portal.service.js';

/** Records per shard call: a page the shard decrypts and sends in one NATS message. */
const PAGE = 200;

const iso = (d: Date | undefined) => (d ? d.toISOString() : null);

/**
 * Everything the gateway holds of one person, as one JSON document streamed piece by piece:
 * the account, passkeys and sessions (never a secret: no session token, no key material),
 * their own rules, and each connection with its grants and every record, decrypted by the
 * owning shard page by page, for the person the gateway resolved from their session (no
 * session token travels to a shard). Records are never all in memory: each page is written
 * out before the next is asked for. The access log is not repeated here; it is
 * `GET /v1/me/audit/entries`. A record a running sync changes while the export pages through
 * the connection may appear twice (its new version comes after the cursor): readers take the
 * last one per id.
 */
@Injectable()
export class PortalExport {
  constructor(
    private readonly portal: PortalService,
    private readonly rpcClient: RpcClient,
    private readonly shards: ShardRouter,
  ) {}

  /**
   * Gathers what is small (account, passkeys, sessions, rules, the connections list) before
   * anything is sent, so a failure there is an ordinary error page; then returns the stream
   * of the document, whose records are fetched as it is read.
   */
  async prepare(person: SignedInPerson & { displayName: string }, now: Date): Promise<AsyncGenerator<string>> {
    const [{ passkeys, sessions }, { rules }, connections] = await Promise.all([
      this.portal.security(person),
      this.rpcClient.request(rpc.policy.listUserRules, { userId: person.userId }),
      // Every record is read below anyway: no per-type counts from the shards first.
      this.portal.connections(person, { counts: false }),
    ]);
    const head = {
      format: 'context-gateway-export/1',
      exportedAt: now.toISOString(),
      account: { userId: person.userId, displayName: person.displayName },
      passkeys: passkeys.map((p) => ({
        name: p.name || null,
        synced: p.synced,
        createdAt: iso(p.createdAt),
        lastUsedAt: iso(p.lastUsedAt),
      })),
      sessions: sessions.map((s) => ({
        method: s.method,
        createdAt: iso(s.createdAt),
        expiresAt: iso(s.expiresAt),
        current: s.current,
      })),
      rules: rules.map((r) => ({
        effect: r.effect === PolicyEffect.DENY ? 'deny' : 'allow',
        integration: r.integration || null,
        capability: r.capability || null,
        resources: r.resources,
        applicationId: r.applicationId || null,
        description: r.description,
      })),
    };
    return this.document(person, head, connections);
  }

  private async *document(
    person: SignedInPerson,
    head: object,
    connections: Awaited<ReturnType<PortalService['connections']>>,
  ): AsyncGenerator<string> {
    // The head as one object, its closing brace replaced by the connections array.
    yield `${JSON.stringify(head).slice(0, -1)},"connections":[`;
    let first = true;
    for (const c of connections) {
      if (c.status === 'deleted') continue;
      const meta = {
        id: c.id,
        integration: c.integration,
        source: c.integrationName,
        status: c.status,
        createdAt: iso(c.createdAt),
        lastSyncedAt: iso(c.sync.lastSuccessAt),
        grants: c.grants.map((g) => ({
          applicationId: g.applicationId,
          application: g.applicationName,
          scopes: g.scopes.map((s) => s.scope),
          grantedAt: iso(g.grantedAt),
          lastReadAt: iso(g.lastReadAt),
        })),
      };
      yield `${first ? '' : ','}${JSON.stringify(meta).slice(0, -1)},"records":[`;
      first = false;
      if (c.status !== 'deleting') yield* this.records(person, c.id);
      yield ']}';
    }
    yield ']}\n';
  }

  /** The connection's records, page by page, as the array's comma-separated elements. */
  private async *records(person: SignedInPerson, connectionId: string): AsyncGenerator<string> {
    let cursor = '';
    let any = false;
    do {
      const page = await this.shards
        .exportPage({ userId: person.userId, connectionId, cursor, limit: PAGE })
        .catch((error: unknown) => {
          // Deleted since the list was read: nothing more to export from it.
          if (AppError.from(error).code === 'connection_not_found') return undefined;
          throw error;
        });
      if (!page) return;
      const json = Buffer.from(page.recordsJson).toString('utf8');
      const elements = json.slice(1, -1);
      if (elements !== '') {
        yield `${any ? ',' : ''}${elements}`;
        any = true;
      }
      cursor = page.nextCursor;
    } while (cursor !== '');
  }
}
