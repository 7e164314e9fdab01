import { RpcHandler } from '@context-gateway/messaging';
import {
  type DeleteMcpOAuthServerRequest,
  type ListMcpOAuthServersRequest,
  type PutMcpOAuthServerRequest,
  rpc,
} from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import type { McpOAuthServer } from './mcp-oauth-servers.repository.js';
import { McpOAuthServersService } from './mcp-oauth-servers.service.js';

/** What an admin view shows of a registration: never the client secret. */
function toWire(row: McpOAuthServer, redirectUri: string) {
  return {
    integration: row.integration,
    url: row.url,
    resource: row.resource,
    issuer: row.issuer,
    clientSource: row.clientSource,
    scopes: row.scopes,
    redirectUri,
  };
}

/** The broker's NATS verbs for MCP servers with their own OAuth (the gateway's admin routes call them). */
@Controller()
export class McpOAuthHandler {
  constructor(private readonly servers: McpOAuthServersService) {}

  @RpcHandler(rpc.broker.putMcpOAuthServer)
  async put(@Payload() req: PutMcpOAuthServerRequest) {
    const server = await this.servers.put({
      orgId: req.orgId,
      integration: req.integration,
      url: req.url,
      clientId: req.clientId,
      clientSecret: req.clientSecret,
    });
    return { server: toWire(server, this.servers.redirectUri(server)) };
  }

  @RpcHandler(rpc.broker.deleteMcpOAuthServer)
  async delete(@Payload() req: DeleteMcpOAuthServerRequest) {
    return { deleted: await this.servers.delete(req.orgId, req.integration) };
  }

  @RpcHandler(rpc.broker.listMcpOAuthServers)
  async list(@Payload() req: ListMcpOAuthServersRequest) {
    return {
      servers: (await this.servers.list(req.orgId)).map((row) => toWire(row, this.servers.redirectUri(row))),
    };
  }
}
