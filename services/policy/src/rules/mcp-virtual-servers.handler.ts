import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { RpcHandler } from '@context-gateway/messaging';
import {
  type DeleteMcpVirtualServerRequest,
  type ListMcpVirtualServersRequest,
  type PutMcpVirtualServerRequest,
  rpc,
} from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import type { McpVirtualServer as VirtualServerRow } from '../generated/prisma/client.js';
import { McpVirtualServersService } from './mcp-virtual-servers.js';

/** A stored virtual server as the wire carries it (GetCompiledRules uses the same shape). */
export function mcpVirtualServerToWire(row: VirtualServerRow) {
  return {
    name: row.name,
    description: row.description,
    integrations: row.integrations,
    tools: row.tools,
    updatedAt: timestampFromDate(row.updatedAt),
  };
}

/** policy's NATS verbs for an org's named virtual servers (admin writes and reads). */
@Controller()
export class McpVirtualServersHandler {
  constructor(private readonly servers: McpVirtualServersService) {}

  @RpcHandler(rpc.policy.putMcpVirtualServer)
  async put(@Payload() req: PutMcpVirtualServerRequest) {
    const { server, revision } = await this.servers.put(req.orgId, req);
    return { server: mcpVirtualServerToWire(server), revision };
  }

  @RpcHandler(rpc.policy.listMcpVirtualServers)
  async list(@Payload() req: ListMcpVirtualServersRequest) {
    return { servers: (await this.servers.list(req.orgId)).map(mcpVirtualServerToWire) };
  }

  @RpcHandler(rpc.policy.deleteMcpVirtualServer)
  async delete(@Payload() req: DeleteMcpVirtualServerRequest) {
    const { server, revision } = await this.servers.delete(req.orgId, req.name);
    return { server: mcpVirtualServerToWire(server), revision };
  }
}
