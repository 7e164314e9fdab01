import { RpcHandler, StorableStringsInterceptor } from '@context-gateway/messaging';
import {
  type CountRecordsRequest,
  type ExportRecordsRequest,
  type QueryRecordsRequest,
  rpc,
  type WriteRecordsRequest,
} from '@context-gateway/proto';
import { Controller, UseInterceptors } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { encodeQueryReply } from './query-reply.js';
import { RecordsService } from './records.service.js';

/**
 * `ps.v1.write_records` (any shard: the connection's row lock serializes writers) and
 * `ps.v1.shard.<n>.query` (only the owning shard answers; it re-checks everything).
 *
 * Every handler but the query refuses a NUL in any string (StorableStringsInterceptor, per
 * method, as every other personal-server controller has it per class). The query is the
 * data plane's hot path and its contract already refuses a NUL in each string that reaches
 * SQL (uuid × 3, `type`, `policyTypes`; the cursor only as the number it decodes to): an
 * interceptor there would add Nest's interceptor pipeline and an Observable per query for
 * nothing (storable-strings.spec.ts pins both sides).
 */
@Controller()
export class RecordsHandler {
  constructor(private readonly records: RecordsService) {}

  /** `ps.v1.shard.<n>.export`: the person's own records, decrypted, for the owner only. */
  @RpcHandler(rpc.personalServer.shardExport)
  @UseInterceptors(StorableStringsInterceptor)
  async export(@Payload() request: ExportRecordsRequest) {
    return this.records.exportPage(request.userId, request.connectionId, request.cursor, request.limit);
  }

  /** `ps.v1.count_records`: what the person's connection holds, per type (any shard: one shared table). */
  @RpcHandler(rpc.personalServer.countRecords)
  @UseInterceptors(StorableStringsInterceptor)
  async count(@Payload() request: CountRecordsRequest) {
    return { counts: await this.records.countByType(request.userId, request.connectionId) };
  }

  @RpcHandler(rpc.personalServer.writeRecords)
  @UseInterceptors(StorableStringsInterceptor)
  write(@Payload() request: WriteRecordsRequest) {
    return this.records.write(request);
  }

  /** The page's reply is encoded here, by hand (query-reply.ts): it is the query path's hot spot. */
  @RpcHandler(rpc.personalServer.shardQuery)
  async query(@Payload() request: QueryRecordsRequest) {
    return encodeQueryReply(await this.records.query(request));
  }
}
