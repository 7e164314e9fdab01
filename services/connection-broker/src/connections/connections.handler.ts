import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { RpcHandler } from '@context-gateway/messaging';
import {
  ConnectionStatus,
  type FindUserGrantRequest,
  type GetAccessTokenRequest,
  type GetConnectionRequest,
  type ListUserConnectionsRequest,
  type RemoveConnectionRequest,
  rpc,
} from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { IntegrationResolver } from '../mcp-oauth/mcp-oauth-servers.service.js';
import { PersonSessions } from '../people/person-sessions.js';
import { AccessTokensService } from './access-tokens.service.js';
import type { ConnectionDeletion } from './connection-deletions.repository.js';
import type { Connection } from './connections.repository.js';
import { ConnectionsService } from './connections.service.js';

const STATUS = {
  active: ConnectionStatus.ACTIVE,
  needs_reauth: ConnectionStatus.NEEDS_REAUTH,
  revoked: ConnectionStatus.REVOKED,
} as const;

/** A deleted connection is `deleting` until the Personal Server confirmed the shredding, then `deleted`. */
function statusOf(connection: Connection, deletion: ConnectionDeletion | null | undefined): ConnectionStatus {
  if (!connection.deletedAt) return STATUS[connection.status];
  return deletion && deletion.confirmedAt === null ? ConnectionStatus.DELETING : ConnectionStatus.DELETED;
}

function toConnectionMessage(connection: Connection, scopes: string[], deletion?: ConnectionDeletion | null) {
  return {
    id: connection.id,
    integration: connection.integration,
    status: statusOf(connection, deletion),
    scopes,
    createdAt: timestampFromDate(connection.createdAt),
    userId: connection.userId,
    orgId: connection.orgId,
  };
}

@Controller()
export class ConnectionsHandler {
  constructor(
    private readonly connections: ConnectionsService,
    private readonly accessTokens: AccessTokensService,
    private readonly integrations: IntegrationResolver,
    private readonly people: PersonSessions,
  ) {}

  @RpcHandler(rpc.broker.getConnection)
  async get(@Payload() m: GetConnectionRequest) {
    const { connection, scopes } = await this.connections.getForApp(m.orgId, m.applicationId, m.connectionId);
    return { connection: toConnectionMessage(connection, scopes) };
  }

  @RpcHandler(rpc.broker.getAccessToken)
  async accessToken(@Payload() m: GetAccessTokenRequest) {
    const { credential, connection } = await this.accessTokens.accessToken(
      m.connectionId,
      m.forceRefresh,
      m.refusedCredentialVersion,
    );
    return {
      accessToken: credential.accessToken,
      tokenType: credential.tokenType,
      expiresAt: credential.expiresAt ? timestampFromDate(new Date(credential.expiresAt)) : undefined,
      integration: connection.integration,
      // An org's MCP server with its own OAuth: its resource (the server itself).
      apiBaseUrl: (await this.integrations.resolve(connection.orgId, connection.integration)).apiBaseUrl,
      sourceScopes: connection.sourceScopes,
      // The sync-worker writes to this user's Personal Server.
      userId: connection.userId,
      // Sent back as refusedCredentialVersion when the source refuses this token.
      credentialVersion: connection.credentialVersion,
    };
  }

  @RpcHandler(rpc.broker.findUserGrant)
  async findUserGrant(@Payload() m: FindUserGrantRequest) {
    const found = await this.connections.findUsableForApp(m);
    if (!found) return { connectionId: '', scopes: [], status: ConnectionStatus.UNSPECIFIED };
    // A connection the source refused is not usable: the person reconnects through the connect flow.
    if (found.connection.status !== 'active')
      return { connectionId: '', scopes: [], status: STATUS[found.connection.status] };
    return { connectionId: found.connection.id, scopes: found.scopes, status: ConnectionStatus.ACTIVE };
  }

  @RpcHandler(rpc.broker.listUserConnections)
  async listForUser(@Payload() m: ListUserConnectionsRequest) {
    const connections = await this.connections.listForUser(await this.people.userId(m.personSessionToken));
    return {
      connections: connections.map((c) => ({
        // Scopes: what the person grants to any application, active grants only.
        connection: toConnectionMessage(
          c,
          [...new Set(c.grants.filter((g) => g.status === 'active').flatMap((g) => g.scopes))].sort(),
          c.deletion,
        ),
        grants: c.grants.map((g) => ({
          applicationId: g.applicationId,
          orgId: g.orgId,
          scopes: g.scopes,
          active: g.status === 'active',
          grantedAt: timestampFromDate(g.createdAt),
          ...(g.revokedAt ? { revokedAt: timestampFromDate(g.revokedAt) } : {}),
        })),
      })),
    };
  }

  @RpcHandler(rpc.broker.removeConnection)
  async remove(@Payload() m: RemoveConnectionRequest) {
    const { revokedAtSource, status } = await this.connections.remove(
      m.connectionId,
      await this.people.recentUserId(m.personSessionToken),
    );
    return { revokedAtSource, status: status === 'deleted' ? ConnectionStatus.DELETED : ConnectionStatus.DELETING };
  }
}
