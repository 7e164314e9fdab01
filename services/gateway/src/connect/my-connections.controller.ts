import { timestampDate } from '@bufbuild/protobuf/wkt';
import { RpcClient } from '@context-gateway/messaging';
import { ConnectionStatus, rpc } from '@context-gateway/proto';
import { Controller, Param, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';

import { setAuditSubject } from '../audit/audit-subject.js';
import { CurrentSessionToken } from '../auth/auth.decorators.js';
import { required } from '../http/required.js';
import { Route } from '../http/route.decorator.js';
import { connectionParams, revokedSchema, userGrantParams } from '../records/records.schemas.js';
import { connectionJson, connectionSchema } from './connection.schema.js';

const myConnections = z.object({
  connections: z.array(
    connectionSchema.extend({
      scopes: z.array(z.string()).describe('Everything you currently grant on this connection, to any application.'),
      grants: z.array(
        z.object({
          applicationId: z.string(),
          scopes: z.array(z.string()),
          active: z.boolean(),
          grantedAt: z.string(),
          revokedAt: z.string().nullable(),
        }),
      ),
    }),
  ),
});

const deleted = z.object({
  connectionId: z.string(),
  status: z
    .enum(['deleting', 'deleted'])
    .describe(
      '`deleted`: the records and their key are destroyed. `deleting`: every grant is revoked and the credential destroyed; ' +
        'the Personal Server has not confirmed destroying the records yet, and is asked again until it does ' +
        '(the connection stays in GET /v1/me/connections as `deleting` until then, and leaves it once deleted).',
    ),
  revokedAtSource: z
    .boolean()
    .describe('Whether the source confirmed revoking our token (false when it has no revocation endpoint).'),
});

const iso = (ts: Parameters<typeof timestampDate>[0] | undefined) => (ts ? timestampDate(ts).toISOString() : null);

/**
 * A signed-in person's own connections (passkey session): which applications can read
 * what, and the way out — revoke one application, or delete the whole connection, which revokes every grant, revokes the token at the source where it can and
 * crypto-shreds the Personal Server's copy (`deleting` until it confirmed, then `deleted`). Only the person's own connections exist here:
 * anyone else's id is 404.
 */
@Controller('v1')
export class MyConnectionsController {
  constructor(private readonly rpcClient: RpcClient) {}

  @Route({
    method: 'GET',
    path: 'me/connections',
    summary: 'Your connections and the applications holding grants on them',
    tags: ['me'],
    auth: 'user_session',
    success: {
      status: 200,
      schema: myConnections,
      description: 'Oldest first; revoked grants are listed with revokedAt.',
    },
    errors: ['unauthenticated'],
  })
  async list(@CurrentSessionToken() personSessionToken: string) {
    const { connections } = await this.rpcClient.request(rpc.broker.listUserConnections, { personSessionToken });
    return {
      connections: connections.map(({ connection, grants }) => ({
        ...connectionJson(required(connection, 'connection')),
        grants: grants.map((g) => ({
          applicationId: g.applicationId,
          scopes: g.scopes,
          active: g.active,
          grantedAt: iso(g.grantedAt) ?? '',
          revokedAt: iso(g.revokedAt),
        })),
      })),
    };
  }

  @Route({
    method: 'DELETE',
    path: 'me/connections/:connectionId',
    summary: 'Delete one of your connections',
    description:
      "Revokes every application's grant on it (at your Personal Server first), revokes the token at the source where the source allows, destroys the stored credential, and destroys your Personal Server's copy of its records with their key. " +
      "When this returns, every application's next query for it fails (404 `connection_not_found`, or 403 `grant_revoked` while it is still `deleting`). " +
      'Answers 200 `deleted` when the Personal Server confirmed destroying the records, else 202 `deleting`: the deletion is kept and retried until it does. ' +
      'Needs a passkey use within the last few minutes (401 `reauthentication_required`: confirm at /v1/auth/signin?prompt=login).',
    tags: ['me'],
    auth: 'user_session',
    params: connectionParams,
    success: { status: 200, schema: deleted, description: 'Deleted: records and keys destroyed.' },
    alsoSuccess: { status: 202, description: 'Deleting: access is gone; the records are destroyed on retry.' },
    errors: ['unauthenticated', 'reauthentication_required', 'connection_not_found', 'validation_failed'],
    audit: { action: 'revocation' },
  })
  async remove(
    @CurrentSessionToken() personSessionToken: string,
    @Param() params: z.infer<typeof connectionParams>,
    @Req() request: FastifyRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<z.infer<typeof deleted>> {
    setAuditSubject(request, { connectionId: params.connectionId, resource: `connection:${params.connectionId}` });
    const removed = await this.rpcClient.request(rpc.broker.removeConnection, {
      connectionId: params.connectionId,
      personSessionToken,
    });
    const status = removed.status === ConnectionStatus.DELETED ? 'deleted' : 'deleting';
    if (status === 'deleting') void reply.status(202);
    return { connectionId: params.connectionId, status, revokedAtSource: removed.revokedAtSource };
  }

  @Route({
    method: 'DELETE',
    path: 'me/connections/:connectionId/grants/:applicationId',
    summary: "Revoke one application's access to one of your connections",
    description:
      "The application's next query is 403 `grant_revoked`; other applications keep their grants. " +
      'Needs a passkey use within the last few minutes (401 `reauthentication_required`: confirm at /v1/auth/signin?prompt=login).',
    tags: ['me'],
    auth: 'user_session',
    params: userGrantParams,
    success: { status: 200, schema: revokedSchema, description: 'The revoked grant.' },
    errors: ['unauthenticated', 'reauthentication_required', 'connection_not_found', 'validation_failed'],
    audit: { action: 'revocation' },
  })
  async revoke(
    @CurrentSessionToken() personSessionToken: string,
    @Param() params: z.infer<typeof userGrantParams>,
    @Req() request: FastifyRequest,
  ) {
    setAuditSubject(request, { connectionId: params.connectionId, applicationId: params.applicationId });
    const { grantId } = await this.rpcClient.request(rpc.broker.revokeGrant, {
      connectionId: params.connectionId,
      applicationId: params.applicationId,
      personSessionToken,
    });
    return { grantId };
  }
}
