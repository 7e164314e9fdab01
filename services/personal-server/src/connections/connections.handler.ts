import { AppError } from '@context-gateway/errors';
import { RpcClient, RpcHandler, StorableStringsInterceptor } from '@context-gateway/messaging';
import { type DeleteConnectionRequest, rpc } from '@context-gateway/proto';
import { Controller, UseInterceptors } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { DirectoryRepository } from '../directory/directory.repository.js';
import { DirectoryService } from '../directory/directory.service.js';
import { ConnectionsService } from './connections.service.js';

/**
 * `ps.v1.delete_connection` (any shard) forwards to the owning shard's
 * `ps.v1.shard.<n>.delete_connection`, so the process that holds the connection's
 * unwrapped key in memory is the one that zeroes it.
 */
@Controller()
@UseInterceptors(StorableStringsInterceptor)
export class ConnectionsHandler {
  constructor(
    private readonly connections: ConnectionsService,
    private readonly directory: DirectoryService,
    private readonly directoryRepository: DirectoryRepository,
    private readonly rpcClient: RpcClient,
  ) {}

  @RpcHandler(rpc.personalServer.deleteConnection)
  async delete(@Payload() request: DeleteConnectionRequest) {
    const owner = await this.directoryRepository.findByConnection(request.connectionId);
    if (owner && owner.shard !== this.directory.shardId) {
      const descriptor = rpc.personalServer.shardDeleteConnection;
      if (!descriptor.shardSubject) throw new AppError('internal', `${descriptor.subject} is not a sharded contract`);
      return this.rpcClient.request(descriptor, request, { subject: descriptor.shardSubject(owner.shard) });
    }
    return this.connections.delete(request.connectionId, request.userId);
  }

  @RpcHandler(rpc.personalServer.shardDeleteConnection)
  deleteHere(@Payload() request: DeleteConnectionRequest) {
    return this.connections.delete(request.connectionId, request.userId);
  }
}
