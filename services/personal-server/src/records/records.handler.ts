import { RpcHandler } from '@context-gateway/messaging';
import {
  type CountRecordsRequest,
  type ExportRecordsRequest,
  type QueryRecordsRequest,
  rpc,
  type WriteRecordsRequest,
} from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { encodeQueryReply } from './query-reply.js';
import { RecordsService } from './records.service.js';

/**
 * `ps.v1.write_records` (any shard: the connection's row lock serializes writers) and
 * `ps.v1.shard.<n>.query` (only the owning shard answers; it re-checks everything).
 */
@Controller()
export class RecordsHandler {
  constructor(private readonly records: RecordsService) {}

  /** `ps.v1.shard.<n>.export`: the person's own records, decrypted, for the owner only. */
  @RpcHandler(rpc.personalServer.shardExport)
  async export(@Payload() request: ExportRecordsRequest) {
    return this.records.exportPage(request.userId, request.connectionId, request.cursor, request.limit);
  }

  /** `ps.v1.count_records`: what the person's connection holds, per type (any shard: one shared table). */
  @RpcHandler(rpc.personalServer.countRecords)
  async count(@Payload() request: CountRecordsRequest) {
    return { counts: await this.records.countByType(request.userId, request.connectionId) };
  }

  @RpcHandler(rpc.personalServer.writeRecords)
  write(@Payload() request: WriteRecordsRequest) {
    return this.records.write(request);
  }

  /**
   * The page's reply is encoded here, by hand (query-reply.ts): it is the query path's hot spot.
   * No `@Payload()`: without parameter decorators Nest hands the method the decoded, validated
   * request as NatsRpcServer passed it, and skips its per-call parameter pipeline (~4 % of the
   * RPC server's own CPU; records.int-spec.ts asks this handler over NATS).
   */
  @RpcHandler(rpc.personalServer.shardQuery)
  async query(request: QueryRecordsRequest) {
    return encodeQueryReply(await this.records.query(request));
  }
}
