import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { RpcHandler } from '@context-gateway/messaging';
import {
  type DeleteMcpServerRequest,
  type ListMcpServersRequest,
  type PutMcpServerRequest,
  rpc,
  type SetMcpToolsRequest,
} from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import type { McpServer as McpServerRow } from '../generated/prisma/client.js';
import { mcpServerAuth, McpServersService } from './mcp-servers.js';

/** A stored server as the wire carries it (GetCompiledRules uses the same shape). */
export function mcpServerToWire(row: McpServerRow) {
  return {
    integration: row.integration,
    url: row.url,
    toolsJson: row.toolsJson,
    toolsDigest: row.toolsDigest,
    ...(row.toolsReadAt ? { toolsReadAt: timestampFromDate(row.toolsReadAt) } : {}),
    resourceArguments: row.resourceArguments as Record<string, string>,
    auth: row.auth,
  };
}

/** policy's NATS verbs for an org's remote MCP servers (admin writes; the gateway's tool refresh). */
@Controller()
export class McpServersHandler {
  constructor(private readonly servers: McpServersService) {}

  @RpcHandler(rpc.policy.putMcpServer)
  async put(@Payload() req: PutMcpServerRequest) {
    const { server, revision } = await this.servers.put(
      req.orgId,
      req.integration,
      req.url,
      req.resourceArguments,
      mcpServerAuth(req.auth),
    );
    return { server: mcpServerToWire(server), revision };
  }

  @RpcHandler(rpc.policy.listMcpServers)
  async list(@Payload() req: ListMcpServersRequest) {
    return { servers: (await this.servers.list(req.orgId)).map(mcpServerToWire) };
  }

  @RpcHandler(rpc.policy.deleteMcpServer)
  async delete(@Payload() req: DeleteMcpServerRequest) {
    const { server, revision } = await this.servers.delete(req.orgId, req.integration);
    return { server: mcpServerToWire(server), revision };
  }

  @RpcHandler(rpc.policy.setMcpTools)
  async setTools(@Payload() req: SetMcpToolsRequest) {
    const { server, revision } = await this.servers.setTools(
      req.orgId,
      req.integration,
      req.url,
      req.toolsJson,
      Number(req.retainUnseenMs),
    );
    return { server: mcpServerToWire(server), revision };
  }
}
