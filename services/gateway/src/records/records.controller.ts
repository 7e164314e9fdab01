import { timestampDate } from '@bufbuild/protobuf/wkt';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { recordType } from '@context-gateway/record-catalog';
import { SERVICE_ENV } from '@context-gateway/service-kit';
import { Controller, Inject, Param, Req } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';

import { setAuditSubject } from '../audit/audit-subject.js';
import { Caller, callerOf } from '../auth/auth.decorators.js';
import type { ApplicationCaller } from '../auth/auth.types.js';
import type { Env } from '../env.js';
import { DirectRoute, Route } from '../http/route.decorator.js';
import { insufficientScope } from '../oauth/access-tokens.js';
import { auditPolicyOf } from '../policy/policy-decider.js';
import { connectionParams, recordsPageSchema, recordsQuery, revokedSchema } from './records.schemas.js';
import { RecordsPolicy } from './records-policy.js';
import { ShardRouter } from './shard-router.js';

const RECORDS_OPEN = Buffer.from('{"records":');

/**
 * The data plane's public face: an app reads a connection's records (only the types its
 * grant covers) and gives its grant up (a person's revocations: MyConnectionsController). Revocations go to the
 * connection-broker (it owns grants), which commits them at the Personal Server shard
 * before answering — so when these routes return, the app's next query already fails.
 */
@Controller('v1')
export class RecordsController {
  constructor(
    private readonly router: ShardRouter,
    private readonly rpcClient: RpcClient,
    private readonly policy: RecordsPolicy,
    @Inject(SERVICE_ENV) private readonly env: Env,
  ) {}

  // The data plane's hot path: served by Fastify directly (src/http/direct-routes.ts), with
  // the same guard, audit, validation and error answers as a Nest route.
  @DirectRoute({
    method: 'GET',
    path: 'connections/:connectionId/records',
    summary: "Read a connection's records",
    description:
      'One page of the records synced for a connection your application holds a grant on, newest changes last. ' +
      'Only record types covered by the granted scopes are returned; asking for another type is 403 `scope_not_granted`. ' +
      'A connection you hold no grant on is 404 `connection_not_found`; a revoked grant is 403 `grant_revoked`; ' +
      'a scope the org, the user or your application policy denies is 403 `policy_denied`. ' +
      'Page with `cursor` (stable while sync writes); `since` returns changes including deletions (`deleted: true`).',
    tags: ['records'],
    auth: 'api_key',
    params: connectionParams,
    query: recordsQuery,
    success: { status: 200, schema: recordsPageSchema, description: 'A page of records.' },
    errors: [
      'unauthenticated',
      'connection_not_found',
      'scope_not_granted',
      'record_type_retired',
      'grant_revoked',
      'policy_denied',
      'approval_required',
      'policy_unavailable',
      'validation_failed',
      'unknown_field',
    ],
    audit: { action: 'data_query' },
    personTokens: true,
  })
  async list(request: FastifyRequest, reply: FastifyReply): Promise<Buffer> {
    const caller = callerOf(request);
    // Parsed by the audit interceptor (defaults applied) before this runs.
    const params = request.params as z.infer<typeof connectionParams>;
    const query = request.query as z.infer<typeof recordsQuery>;
    setAuditSubject(request, { connectionId: params.connectionId, resource: query.type ?? '*' });
    const retired = query.type === undefined ? undefined : recordType(query.type)?.retired;
    if (retired !== undefined) {
      // A type of an older catalog: its records moved to its successor (no scope grants it,
      // so there is no policy to ask; the shard refuses it too).
      throw new AppError(
        'record_type_retired',
        `Record type "${query.type}" was retired in catalog version ${retired}; docs/record-types.md names its successor`,
      );
    }
    const placement = await this.router.placement(params.connectionId);
    // A token acting for a person reaches that person's connections only; any other is
    // not found, exactly like one without a grant (no 403 that would confirm it exists).
    if (caller.onBehalfOf !== undefined && placement.userId !== caller.onBehalfOf) {
      throw new AppError('connection_not_found');
    }
    if (caller.tokenScopes) {
      const needed = this.policy.neededScopes(placement, query.type);
      if (needed.length > 0 && !needed.some((scope) => caller.tokenScopes?.includes(scope))) {
        throw insufficientScope(reply, this.env, needed);
      }
    }
    // Who the connection belongs to goes into the caller's audit trail only once the shard has
    // confirmed the caller's grant: another org's user id must never land in this org's log.
    const owner = { userId: placement.userId, integration: placement.integration };
    const verdict = await this.policy.check(caller, placement, query.type, caller.tokenScopes);
    const decision = verdict.decision;
    if (decision) setAuditSubject(request, { policy: auditPolicyOf(decision) });
    const message = {
      orgId: caller.orgId,
      applicationId: caller.applicationId,
      connectionId: params.connectionId,
      type: query.type ?? '',
      sinceMs: query.since ? BigInt(Date.parse(query.since)) : 0n,
      limit: query.limit,
      cursor: query.cursor ?? '',
      fields: query.fields ? query.fields.split(',') : [],
      policyTypes: verdict.kind === 'allowed' ? (verdict.policyTypes ?? []) : [],
    };
    if (verdict.kind === 'denied') {
      // Denied by policy — but a connection without a grant must stay a 404 (and a revoked
      // grant a grant_revoked), never a 403 that tells the app the connection exists: the
      // shard's answer for the grant wins, policy_denied only when the grant is fine.
      await this.router.query({ ...message, limit: 1, fields: [] });
      setAuditSubject(request, owner);
      throw verdict.error;
    }
    const page = await this.router.query(message);
    setAuditSubject(request, owner);
    // The shard sends the records as a finished JSON array: its bytes are spliced into the
    // answer as they came off the wire, never decoded, re-parsed or encoded again here.
    reply.header('content-type', 'application/json; charset=utf-8');
    const syncedAt = page.syncedAt ? JSON.stringify(timestampDate(page.syncedAt).toISOString()) : 'null';
    const nextCursor = page.nextCursor ? JSON.stringify(page.nextCursor) : 'null';
    return Buffer.concat([
      RECORDS_OPEN,
      page.recordsJson,
      Buffer.from(`,"nextCursor":${nextCursor},"syncedAt":${syncedAt}}`),
    ]);
  }

  @Route({
    method: 'DELETE',
    path: 'connections/:connectionId/grant',
    summary: 'Give up your grant on a connection',
    description:
      "Revokes your application's grant; your next query on the connection is 403 `grant_revoked`. Other applications' grants are untouched. " +
      "With an access token acting for a person, only that person's connections: any other is 404 `connection_not_found`.",
    tags: ['records'],
    auth: 'api_key',
    params: connectionParams,
    success: { status: 200, schema: revokedSchema, description: 'The revoked grant.' },
    errors: ['unauthenticated', 'connection_not_found', 'validation_failed'],
    audit: { action: 'revocation' },
    personTokens: true,
  })
  async giveUp(
    @Caller() caller: ApplicationCaller,
    @Param() params: z.infer<typeof connectionParams>,
    @Req() request: FastifyRequest,
  ) {
    setAuditSubject(request, { connectionId: params.connectionId });
    // A token acting for a person gives up grants on that person's connections only.
    if (caller.onBehalfOf !== undefined) {
      const placement = await this.router.placement(params.connectionId);
      if (placement.userId !== caller.onBehalfOf) throw new AppError('connection_not_found');
    }
    const { grantId } = await this.rpcClient.request(rpc.broker.revokeGrant, {
      connectionId: params.connectionId,
      applicationId: caller.applicationId,
      orgId: caller.orgId,
    });
    return { grantId };
  }
}
