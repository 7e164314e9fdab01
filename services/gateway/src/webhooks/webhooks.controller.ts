import { Body, Controller, Param, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';

import { setAuditSubject } from '../audit/audit-subject.js';
import { Caller } from '../auth/auth.decorators.js';
import type { ApplicationCaller } from '../auth/auth.types.js';
import { id } from '../http/input.js';
import { Route } from '../http/route.decorator.js';
import {
  messagesQuery,
  rotateBody,
  webhookBody,
  webhookEndpointSchema,
  webhookMessageSchema,
  webhookMessagesSchema,
} from './webhooks.schemas.js';
import { WebhooksService } from './webhooks.service.js';

const appParams = z.strictObject({ orgId: id(), applicationId: id() });
const messageParams = z.strictObject({ messageId: id() });
const adminTags = ['admin'];
const appTags = ['webhooks'];

/**
 * Webhooks to applications (docs/webhooks.md): an operator configures an application's
 * endpoint and rotates its secret; the application reads its own delivery log and replays a
 * message. Deliveries follow the Standard Webhooks specification.
 */
@Controller('v1')
export class WebhooksController {
  constructor(private readonly webhooks: WebhooksService) {}

  @Route({
    method: 'PUT',
    path: 'admin/organizations/:orgId/applications/:applicationId/webhook',
    summary: "Set an application's webhook endpoint",
    description:
      'Events about the connections the application holds grants on (connection.created, connection.deleted, ' +
      'grant.revoked, connection.needs_reauth, sync.completed, sync.failed) are POSTed there, signed per Standard ' +
      'Webhooks. The first call creates the signing secret and returns it once; changing the URL keeps it.',
    tags: adminTags,
    auth: 'operator',
    audit: { action: 'admin_change' },
    params: appParams,
    body: webhookBody,
    success: { status: 200, schema: webhookEndpointSchema, description: 'The endpoint; `secret` when created now.' },
    errors: ['unauthenticated', 'admin_disabled', 'validation_failed', 'unknown_field', 'not_found'],
  })
  configure(
    @Param() params: z.infer<typeof appParams>,
    @Body() body: z.infer<typeof webhookBody>,
    @Req() request: FastifyRequest,
  ) {
    setAuditSubject(request, { ...params, resource: `application:${params.applicationId}:webhook` });
    return this.webhooks.configure(params.orgId, params.applicationId, body.url);
  }

  @Route({
    method: 'GET',
    path: 'admin/organizations/:orgId/applications/:applicationId/webhook',
    summary: "An application's webhook endpoint",
    description: 'The URL and when its secret was created; never the secret.',
    tags: adminTags,
    auth: 'operator',
    params: appParams,
    success: { status: 200, schema: webhookEndpointSchema, description: 'The endpoint.' },
    errors: ['unauthenticated', 'admin_disabled', 'not_found'],
  })
  get(@Param() params: z.infer<typeof appParams>) {
    return this.webhooks.get(params.orgId, params.applicationId);
  }

  @Route({
    method: 'DELETE',
    path: 'admin/organizations/:orgId/applications/:applicationId/webhook',
    summary: "Remove an application's webhook endpoint",
    description: 'Nothing more is queued for it; messages still waiting are marked failed (`endpoint_deleted`).',
    tags: adminTags,
    auth: 'operator',
    audit: { action: 'admin_change' },
    params: appParams,
    success: { status: 200, schema: z.object({ deleted: z.literal(true) }), description: 'Removed.' },
    errors: ['unauthenticated', 'admin_disabled', 'not_found'],
  })
  remove(@Param() params: z.infer<typeof appParams>, @Req() request: FastifyRequest) {
    setAuditSubject(request, { ...params, resource: `application:${params.applicationId}:webhook` });
    return this.webhooks.remove(params.orgId, params.applicationId);
  }

  @Route({
    method: 'POST',
    path: 'admin/organizations/:orgId/applications/:applicationId/webhook/rotate-secret',
    summary: "Rotate an application's webhook secret",
    description:
      'A new secret signs from now on, returned once. The old one keeps signing beside it for `overlapSeconds` ' +
      '(default 24 hours): deliveries then carry both signatures, so the app can switch without missing one.',
    tags: adminTags,
    auth: 'operator',
    audit: { action: 'admin_change' },
    params: appParams,
    body: rotateBody,
    success: { status: 200, schema: webhookEndpointSchema, description: 'The endpoint with its new `secret`.' },
    errors: ['unauthenticated', 'admin_disabled', 'validation_failed', 'unknown_field', 'not_found'],
  })
  rotate(
    @Param() params: z.infer<typeof appParams>,
    @Body() body: z.infer<typeof rotateBody>,
    @Req() request: FastifyRequest,
  ) {
    setAuditSubject(request, { ...params, resource: `application:${params.applicationId}:webhook` });
    return this.webhooks.rotate(params.orgId, params.applicationId, body.overlapSeconds);
  }

  @Route({
    method: 'GET',
    path: 'webhook/messages',
    summary: 'Your webhook delivery log',
    description:
      'Every message queued for your endpoint, newest first, with its status (pending, delivered, failed), ' +
      'attempts, last HTTP status or error code, and the body as sent.',
    tags: appTags,
    auth: 'api_key',
    query: messagesQuery,
    success: { status: 200, schema: webhookMessagesSchema, description: 'One page.' },
    errors: ['unauthenticated', 'validation_failed', 'unknown_field', 'not_found'],
  })
  messages(@Caller() caller: ApplicationCaller, @Query() query: z.infer<typeof messagesQuery>) {
    return this.webhooks.messages(caller.orgId, caller.applicationId, query.limit, query.cursor);
  }

  @Route({
    method: 'POST',
    path: 'webhook/messages/:messageId/replay',
    summary: 'Deliver a webhook message again',
    description: 'Queues the message for delivery now, with the same `webhook-id` (de-duplicate by it).',
    tags: appTags,
    auth: 'api_key',
    audit: { action: 'admin_change' },
    params: messageParams,
    success: { status: 202, schema: webhookMessageSchema, description: 'The message, pending again.' },
    errors: ['unauthenticated', 'not_found'],
  })
  replay(
    @Caller() caller: ApplicationCaller,
    @Param() params: z.infer<typeof messageParams>,
    @Req() request: FastifyRequest,
  ) {
    setAuditSubject(request, { resource: `webhook_message:${params.messageId}` });
    return this.webhooks.replay(caller.orgId, caller.applicationId, params.messageId);
  }
}
