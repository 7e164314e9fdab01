import { Readable } from 'node:stream';

import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { Injectable, type OnModuleInit } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';

import { AUDIT_ACTIONS, AUDIT_OUTCOMES } from '../audit/audit-recorder.js';
import { setAuditSubject } from '../audit/audit-subject.js';
import { bearerToken } from '../auth/auth.guard.js';
import { AuthStrategies } from '../auth/auth.strategies.js';
import { required } from '../http/required.js';
import {
  csvHeader,
  csvRow,
  encodeHashes,
  type ExportQuery,
  type SearchQuery,
  toCheckpointJson,
  toEntryJson,
} from './auditor-api.schemas.js';

/** An auditor, authenticated by a read-only token scoped to one organization. */
export interface AuditorCaller {
  auditorId: string;
  orgId: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    auditor?: AuditorCaller;
  }
}

/** Whose entries a search may return: an auditor's org, or a signed-in user's own. */
export type SearchScope = { orgId: string } | { userId: string };

const EXPORT_PAGE = 500;

/**
 * The auditor API's work: authenticates auditor tokens (the `auditor` auth kind, registered
 * with the global guard) and turns HTTP queries into the audit service's request/reply
 * contracts. Every query is scoped here, from the credential — never from the request —
 * so an auditor of one org cannot name another org at all.
 */
@Injectable()
export class AuditorApiService implements OnModuleInit {
  constructor(
    private readonly rpcClient: RpcClient,
    private readonly strategies: AuthStrategies,
  ) {}

  onModuleInit(): void {
    this.strategies.register('auditor', (request) => this.authenticate(request));
  }

  private async authenticate(request: FastifyRequest): Promise<void> {
    const token = bearerToken(request);
    if (!token?.startsWith('cg_aud_'))
      throw new AppError('unauthenticated', 'Send an auditor token: Authorization: Bearer cg_aud_...');
    const auditor = await this.rpcClient.request(rpc.audit.authenticateAuditor, { token });
    request.auditor = { auditorId: auditor.auditorId, orgId: auditor.orgId };
    setAuditSubject(request, { orgId: auditor.orgId, actorKind: 'auditor', actorId: auditor.auditorId });
  }

  private searchRequest(scope: SearchScope, q: Omit<SearchQuery, 'cursor' | 'limit'>, cursor: string, limit: number) {
    return {
      orgId: 'orgId' in scope ? scope.orgId : '',
      // A user's own view is pinned to their user id whatever the query says.
      userId: 'userId' in scope ? scope.userId : (q.userId ?? ''),
      from: q.from ? timestampFromDate(new Date(q.from)) : undefined,
      to: q.to ? timestampFromDate(new Date(q.to)) : undefined,
      applicationId: q.applicationId ?? '',
      integration: q.integration ?? '',
      capability: q.capability ?? '',
      outcome: q.outcome ? AUDIT_OUTCOMES[q.outcome] : 0,
      action: q.action ? AUDIT_ACTIONS[q.action] : 0,
      cursor,
      limit,
    };
  }

  async search(scope: SearchScope, q: SearchQuery) {
    const page = await this.rpcClient.request(
      rpc.audit.searchEntries,
      this.searchRequest(scope, q, q.cursor ?? '', q.limit),
    );
    return { entries: page.entries.map(toEntryJson), nextCursor: page.nextCursor || null };
  }

  /** Every matching entry, newest first, as NDJSON or CSV, fetched a page at a time while the client reads. */
  async export(scope: SearchScope, q: ExportQuery): Promise<Readable> {
    const rpcClient = this.rpcClient;
    const request = (cursor: string) => this.searchRequest(scope, q, cursor, EXPORT_PAGE);
    // The first page is fetched before the 200 goes out: with audit down the client gets a 503
    // problem, not a 200 whose body is cut off (what the fuzzer met: docs/fuzzing.md).
    const first = await rpcClient.request(rpc.audit.searchEntries, request(''));
    async function* lines() {
      if (q.format === 'csv') yield csvHeader();
      let page = first;
      for (;;) {
        for (const entry of page.entries) {
          const json = toEntryJson(entry);
          yield q.format === 'csv' ? csvRow(json) : `${JSON.stringify(json)}\n`;
        }
        if (!page.nextCursor) return;
        page = await rpcClient.request(rpc.audit.searchEntries, request(page.nextCursor));
      }
    }
    return Readable.from(lines(), { objectMode: false });
  }

  /** One entry with its inclusion proof: an org's (auditors) or, across orgs, a person's own. */
  async entry(scope: { orgId: string } | { userId: string }, eventId: string) {
    const answer = await this.rpcClient.request(rpc.audit.getEntry, { ...scope, eventId });
    const entry = required(answer.entry, 'entry');
    return {
      entry: toEntryJson(entry),
      canonicalEntry: Buffer.from(entry.canonicalEntry).toString('base64'),
      checkpoint: answer.checkpoint ? toCheckpointJson(answer.checkpoint) : null,
      inclusionProof: encodeHashes(answer.inclusionProof),
    };
  }

  async checkpoint(treeSize: number | undefined) {
    const answer = await this.rpcClient.request(rpc.audit.getCheckpoint, { treeSize: BigInt(treeSize ?? 0) });
    return {
      checkpoint: toCheckpointJson(required(answer.checkpoint, 'checkpoint')),
      publicKey: Buffer.from(answer.publicKey).toString('base64'),
      keyName: answer.keyName,
    };
  }

  async consistency(from: number, to: number) {
    const answer = await this.rpcClient.request(rpc.audit.getConsistencyProof, {
      oldSize: BigInt(from),
      newSize: BigInt(to),
    });
    return {
      oldCheckpoint: toCheckpointJson(required(answer.oldCheckpoint, 'oldCheckpoint')),
      newCheckpoint: toCheckpointJson(required(answer.newCheckpoint, 'newCheckpoint')),
      proof: encodeHashes(answer.proof),
    };
  }

  async revokeAuditor(orgId: string, auditorId: string): Promise<void> {
    await this.rpcClient.request(rpc.audit.revokeAuditor, { orgId, auditorId });
  }

  async createAuditor(orgId: string, name: string) {
    return this.rpcClient.request(rpc.audit.createAuditor, { orgId, name, createdBy: 'operator' });
  }
}
