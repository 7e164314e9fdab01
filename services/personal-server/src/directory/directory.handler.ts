import { RpcHandler, StorableStringsInterceptor } from '@context-gateway/messaging';
import { type LocateConnectionRequest, type ProvisionPersonalServerRequest, rpc } from '@context-gateway/proto';
import { Controller, UseInterceptors } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { DirectoryService } from './directory.service.js';

/** `ps.v1.provision` and `ps.v1.locate_connection`: answered by any shard (shared directory). */
@Controller()
@UseInterceptors(StorableStringsInterceptor)
export class DirectoryHandler {
  constructor(private readonly directory: DirectoryService) {}

  @RpcHandler(rpc.personalServer.provision)
  async provision(@Payload() request: ProvisionPersonalServerRequest) {
    const entry = await this.directory.provision(request.userId);
    return { personalServerId: entry.personalServerId, shard: entry.shard, created: entry.created };
  }

  @RpcHandler(rpc.personalServer.locateConnection)
  async locate(@Payload() request: LocateConnectionRequest) {
    const entry = await this.directory.locateConnection(request.connectionId);
    return { shard: entry.shard, userId: entry.userId, integration: entry.integration };
  }
}
