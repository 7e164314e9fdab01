import type { MessageInitShape } from '@bufbuild/protobuf';
import type { DescMessage } from '@bufbuild/protobuf';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import type { ExportRecordsRequestSchema, QueryRecordsRequestSchema, RpcDescriptor } from '@context-gateway/proto';
import {
  type ExportRecordsResponse,
  type QueryRecordsRequest,
  type QueryRecordsResponse,
  rpc,
} from '@context-gateway/proto';
import { Injectable } from '@nestjs/common';

/** Where a connection lives and whose it is (never changes except the shard, by rebalance). */
export interface Placement {
  shard: number;
  userId: string;
  integration: string;
}

/** Most directory entries kept; beyond it the oldest go (a miss costs one extra round trip). */
const MAX_ENTRIES = 100_000;

/**
 * Sends a query to the personal-server shard that owns the connection. The gateway keeps
 * its own copy of "connection → shard" (filled by `ps.v1.locate_connection` on a miss), so
 * the common case is ONE NATS round trip: straight to `ps.v1.shard.<n>.query`. The copy can
 * only be wrong after a rebalance moved the user; the old shard then answers wrong_shard
 * (it checks ownership in SQL) and we look the connection up again and retry once.
 */
@Injectable()
export class ShardRouter {
  readonly #shards = new Map<string, Placement>();

  constructor(private readonly rpcClient: RpcClient) {}

  /** The connection's placement: from memory, or one `locate_connection` round trip. */
  async placement(connectionId: string): Promise<Placement> {
    return this.#shards.get(connectionId) ?? this.locate(connectionId);
  }

  query(
    message: MessageInitShape<typeof QueryRecordsRequestSchema> & Pick<QueryRecordsRequest, 'connectionId'>,
  ): Promise<QueryRecordsResponse> {
    return this.toOwner(rpc.personalServer.shardQuery, message);
  }

  /** One page of the person's own export, from the owning shard (for the user the gateway resolved from their session). */
  exportPage(
    message: MessageInitShape<typeof ExportRecordsRequestSchema> & { connectionId: string },
  ): Promise<ExportRecordsResponse> {
    return this.toOwner(rpc.personalServer.shardExport, message);
  }

  private async toOwner<Req extends DescMessage, Res extends DescMessage>(
    descriptor: RpcDescriptor<Req, Res>,
    message: MessageInitShape<Req> & { connectionId: string },
  ) {
    const cached = this.#shards.get(message.connectionId);
    const shard = (cached ?? (await this.locate(message.connectionId))).shard;
    try {
      return await this.send(descriptor, shard, message);
    } catch (error) {
      const code = AppError.from(error).code;
      // Only a cached (possibly stale) placement is worth a second try.
      if (cached === undefined || (code !== 'wrong_shard' && code !== 'service_unavailable')) throw error;
      this.#shards.delete(message.connectionId);
      return this.send(descriptor, (await this.locate(message.connectionId)).shard, message);
    }
  }

  private send<Req extends DescMessage, Res extends DescMessage>(
    descriptor: RpcDescriptor<Req, Res>,
    shard: number,
    message: MessageInitShape<Req>,
  ) {
    // Always set for a contract made with defineShardRpc; the catalog's type cannot say so.
    if (!descriptor.shardSubject) throw new AppError('internal', `${descriptor.subject} is not a sharded contract`);
    return this.rpcClient.request(descriptor, message, { subject: descriptor.shardSubject(shard) });
  }

  private async locate(connectionId: string): Promise<Placement> {
    // Unknown connections are not cached: a prober cannot fill the map.
    const reply = await this.rpcClient.request(rpc.personalServer.locateConnection, { connectionId });
    const placement = { shard: reply.shard, userId: reply.userId, integration: reply.integration };
    if (this.#shards.size >= MAX_ENTRIES) this.#shards.delete(this.#shards.keys().next().value as string);
    this.#shards.set(connectionId, placement);
    return placement;
  }
}
