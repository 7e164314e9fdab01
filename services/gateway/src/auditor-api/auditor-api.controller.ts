import { AppError } from '@context-gateway/errors';
import { Body, Controller, Param, Query, Req, StreamableFile } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';

import { setAuditSubject } from '../audit/audit-subject.js';
import { CurrentUser } from '../auth/auth.decorators.js';
import type { SessionUser } from '../auth/auth.types.js';
import { id, queryInt } from '../http/input.js';
import { Route } from '../http/route.decorator.js';
import {
  checkpointResponseSchema,
  consistencyResponseSchema,
  entryWithProofSchema,
  type ExportQuery,
  exportQuery,
  ownSearchQuery,
  type SearchQuery,
  searchQuery,
  searchResultSchema,
} from './auditor-api.schemas.js';
import { AuditorApiService, type AuditorCaller } from './auditor-api.service.js';

const tags = ['audit'];
const entryParams = z.strictObject({ eventId: id() });
// Tree sizes are counts of log entries: exact as JSON numbers up to 2^53.
const treeSize = () => queryInt(1, Number.MAX_SAFE_INTEGER);
const checkpointQuery = z.strictObject({
  treeSize: treeSize().optional().describe('Omit for the latest.'),
});
const consistencyQuery = z.strictObject({ from: treeSize(), to: treeSize() });
const createAuditorParams = z.strictObject({ orgId: id() });
const revokeAuditorParams = z.strictObject({ orgId: id(), auditorId: id() });
const createAuditorBody = z.strictObject({ name: z.string().trim().min(1).max(200) });

function auditorOf(request: FastifyRequest): AuditorCaller {
  if (!request.auditor) throw new AppError('internal', 'This route does not authenticate an auditor');
  return request.auditor;
}

/**
 * The audit trail for auditors (`Authorization: Bearer cg_aud_...`, read-only, one org),
 * for users (their own entries) and the operator (issuing auditor tokens). Reads are
 * themselves audited (`audit_read`). Anything outside the caller's scope is 404 / empty.
 */
@Controller('v1')
export class AuditorApiController {
  constructor(private readonly api: AuditorApiService) {}

  @Route({
    method: 'GET',
    path: 'audit/entries',
    summary: 'Search audit entries of your organization',
    description: 'Newest first; cursor pagination.',
    tags,
    auth: 'auditor',
    audit: { action: 'audit_read' },
    query: searchQuery,
    success: { status: 200, schema: searchResultSchema, description: 'One page.' },
    errors: ['unauthenticated', 'validation_failed', 'unknown_field'],
  })
  search(@Req() request: FastifyRequest, @Query() q: SearchQuery) {
    return this.api.search({ orgId: auditorOf(request).orgId }, q);
  }

  @Route({
    method: 'GET',
    path: 'audit/export',
    summary: 'Export audit entries (NDJSON or CSV, streamed)',
    tags,
    auth: 'auditor',
    audit: { action: 'audit_read' },
    query: exportQuery,
    success: { status: 200, description: 'Every matching entry, newest first.', contentType: 'application/x-ndjson' },
    errors: ['unauthenticated', 'validation_failed', 'unknown_field'],
  })
  async export(@Req() request: FastifyRequest, @Query() q: ExportQuery) {
    const stream = await this.api.export({ orgId: auditorOf(request).orgId }, q);
    const csv = q.format === 'csv';
    return new StreamableFile(stream, {
      type: csv ? 'text/csv; charset=utf-8' : 'application/x-ndjson',
      disposition: `attachment; filename="audit.${csv ? 'csv' : 'ndjson'}"`,
    });
  }

  @Route({
    method: 'GET',
    path: 'audit/entries/:eventId',
    summary: 'An audit entry with its inclusion proof',
    tags,
    auth: 'auditor',
    audit: { action: 'audit_read' },
    params: entryParams,
    success: {
      status: 200,
      schema: entryWithProofSchema,
      description: 'The entry, the latest signed checkpoint and the proof that the entry is in it.',
    },
    errors: ['unauthenticated', 'not_found', 'validation_failed'],
  })
  entry(@Req() request: FastifyRequest, @Param() p: z.infer<typeof entryParams>) {
    setAuditSubject(request, { resource: `audit_entry:${p.eventId}` });
    return this.api.entry({ orgId: auditorOf(request).orgId }, p.eventId);
  }

  @Route({
    method: 'GET',
    path: 'audit/checkpoint',
    summary: 'A signed checkpoint and the key that signs them',
    tags,
    auth: 'auditor',
    query: checkpointQuery,
    success: { status: 200, schema: checkpointResponseSchema, description: 'The checkpoint.' },
    errors: ['unauthenticated', 'not_found', 'validation_failed'],
  })
  checkpoint(@Query() q: z.infer<typeof checkpointQuery>) {
    return this.api.checkpoint(q.treeSize);
  }

  @Route({
    method: 'GET',
    path: 'audit/consistency',
    summary: 'Consistency proof between two signed checkpoints',
    tags,
    auth: 'auditor',
    query: consistencyQuery,
    success: {
      status: 200,
      schema: consistencyResponseSchema,
      description: 'Both checkpoints and the RFC 9162 proof that the newer extends the older.',
    },
    errors: ['unauthenticated', 'not_found', 'validation_failed'],
  })
  consistency(@Query() q: z.infer<typeof consistencyQuery>) {
    if (q.from > q.to)
      throw new AppError('validation_failed', 'from must not exceed to', [
        { path: 'from', message: 'must not exceed to' },
      ]);
    return this.api.consistency(q.from, q.to);
  }

  @Route({
    method: 'GET',
    path: 'me/audit/entries',
    summary: 'Who accessed your data',
    description: 'Entries recorded for the signed-in user, across organizations: which app read which scope, when.',
    tags,
    auth: 'user_session',
    audit: { action: 'audit_read' },
    query: ownSearchQuery,
    success: { status: 200, schema: searchResultSchema, description: 'One page.' },
    errors: ['unauthenticated', 'validation_failed', 'unknown_field'],
  })
  mine(@CurrentUser() user: SessionUser, @Query() q: SearchQuery) {
    return this.api.search({ userId: user.userId }, q);
  }

  @Route({
    method: 'GET',
    path: 'me/audit/entries/:eventId',
    summary: 'One of your audit entries with its inclusion proof',
    description:
      'The entry, its canonical bytes, the latest signed checkpoint and the RFC 9162 proof that the entry is in ' +
      'it: check it against the log key (`GET /v1/audit/checkpoint` for auditors, or the key the operator publishes) ' +
      "to know the access is in the signed log. Only your own entries: anyone else's is 404.",
    tags,
    auth: 'user_session',
    audit: { action: 'audit_read' },
    params: entryParams,
    success: {
      status: 200,
      schema: entryWithProofSchema,
      description: 'The entry, the latest signed checkpoint and the proof that the entry is in it.',
    },
    errors: ['unauthenticated', 'not_found', 'validation_failed'],
  })
  myEntry(@CurrentUser() user: SessionUser, @Req() request: FastifyRequest, @Param() p: z.infer<typeof entryParams>) {
    setAuditSubject(request, { resource: `audit_entry:${p.eventId}` });
    return this.api.entry({ userId: user.userId }, p.eventId);
  }

  @Route({
    method: 'POST',
    path: 'admin/organizations/:orgId/auditors',
    summary: 'Issue an auditor token for an organization',
    description: 'The token is shown once; only its SHA-256 is stored.',
    tags: ['admin'],
    auth: 'operator',
    audit: { action: 'admin_change', intent: true },
    params: createAuditorParams,
    body: createAuditorBody,
    success: { status: 201, schema: z.object({ auditorId: z.string(), token: z.string() }), description: 'Created.' },
    errors: ['unauthenticated', 'admin_disabled', 'validation_failed', 'unknown_field'],
  })
  async createAuditor(
    @Req() request: FastifyRequest,
    @Param() p: z.infer<typeof createAuditorParams>,
    @Body() body: z.infer<typeof createAuditorBody>,
  ) {
    setAuditSubject(request, { orgId: p.orgId });
    const created = await this.api.createAuditor(p.orgId, body.name);
    setAuditSubject(request, { resource: `auditor:${created.auditorId}` });
    return { auditorId: created.auditorId, token: created.token };
  }

  @Route({
    method: 'DELETE',
    path: 'admin/organizations/:orgId/auditors/:auditorId',
    summary: 'Revoke an auditor token',
    description: 'The next request with it is 401.',
    tags: ['admin'],
    auth: 'operator',
    audit: { action: 'admin_change', intent: true },
    params: revokeAuditorParams,
    success: { status: 204, description: 'Revoked.' },
    errors: ['unauthenticated', 'admin_disabled', 'not_found', 'validation_failed'],
  })
  async revokeAuditor(@Req() request: FastifyRequest, @Param() p: z.infer<typeof revokeAuditorParams>) {
    setAuditSubject(request, { orgId: p.orgId, resource: `auditor:${p.auditorId}` });
    await this.api.revokeAuditor(p.orgId, p.auditorId);
  }
}
