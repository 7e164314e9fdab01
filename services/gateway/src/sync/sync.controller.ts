import { Body, Controller, Headers, Param, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';

import { setAuditSubject } from '../audit/audit-subject.js';
import { Caller } from '../auth/auth.decorators.js';
import type { ApplicationCaller } from '../auth/auth.types.js';
import { Route } from '../http/route.decorator.js';
import {
  IMPORT_ERRORS,
  importSuccess,
  syncParams,
  syncRequestedSchema,
  syncStateSchema,
  webhookAcceptedSchema,
} from './sync.schemas.js';
import { SyncService } from './sync.service.js';

/** Sync status, sync now, export uploads (apps); webhooks (sources). */
@Controller('v1')
export class SyncController {
  constructor(private readonly sync: SyncService) {}

  @Route({
    method: 'GET',
    path: 'connections/:connectionId/sync',
    summary: "A connection's sync status",
    description:
      'Where syncing stands for a connection your application holds a grant on; any other connection is 404 `connection_not_found`. ' +
      "An access token acting for a person reaches that person's connections only, of an integration it has a scope of.",
    tags: ['sync'],
    auth: 'api_key',
    personTokens: true,
    params: syncParams,
    success: { status: 200, schema: syncStateSchema, description: 'The sync status.' },
    errors: ['unauthenticated', 'connection_not_found', 'validation_failed', 'scope_not_granted'],
  })
  state(
    @Caller() caller: ApplicationCaller,
    @Param() params: z.infer<typeof syncParams>,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    return this.sync.state(caller, params.connectionId, reply);
  }

  @Route({
    method: 'POST',
    path: 'connections/:connectionId/sync',
    summary: 'Sync a connection now',
    description: 'Queues an incremental sync. Requests made while one runs are folded into one more run after it.',
    tags: ['sync'],
    auth: 'api_key',
    personTokens: true,
    params: syncParams,
    success: { status: 202, schema: syncRequestedSchema, description: 'The sync is queued.' },
    errors: ['unauthenticated', 'connection_not_found', 'validation_failed', 'scope_not_granted'],
  })
  syncNow(
    @Caller() caller: ApplicationCaller,
    @Param() params: z.infer<typeof syncParams>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    setAuditSubject(request, { connectionId: params.connectionId });
    return this.sync.requestSync(caller, params.connectionId, reply);
  }

  @Route({
    method: 'POST',
    path: 'connections/:connectionId/imports',
    summary: 'Upload an export (Netflix ViewingActivity.csv)',
    description:
      'Body: the CSV file as `text/csv`, read as it streams (size-limited). Each row is validated; bad rows are listed with their line number and skipped, the rest are imported. ' +
      'Uploading the same file again adds nothing (records are keyed by their content).',
    tags: ['sync'],
    auth: 'api_key',
    personTokens: true,
    params: syncParams,
    success: importSuccess,
    errors: [...IMPORT_ERRORS, 'scope_not_granted'],
  })
  import(
    @Caller() caller: ApplicationCaller,
    @Param() params: z.infer<typeof syncParams>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    setAuditSubject(request, { connectionId: params.connectionId });
    const length = request.headers['content-length'] ? Number(request.headers['content-length']) : undefined;
    return this.sync.importCsv(
      caller,
      params.connectionId,
      request.body,
      Number.isFinite(length) ? length : undefined,
      reply,
    );
  }

  @Route({
    method: 'POST',
    path: 'webhooks/github',
    summary: 'GitHub webhook receiver',
    description:
      "Configure as the GitHub App's (or repository's) webhook URL with the gateway's GITHUB_WEBHOOK_SECRET. Deliveries are verified " +
      '(`X-Hub-Signature-256`, HMAC-SHA256 over the raw body) and trigger an incremental sync of the connections of the accounts they concern.',
    tags: ['sync'],
    auth: 'none',
    success: { status: 202, schema: webhookAcceptedSchema, description: 'Accepted.' },
    errors: ['webhook_signature_invalid', 'validation_failed'],
  })
  githubWebhook(
    @Req() request: FastifyRequest,
    @Headers() headers: Record<string, string | string[] | undefined>,
    @Body() body: unknown,
  ) {
    return this.sync.githubWebhook(request.rawBody, headers, body);
  }
}
