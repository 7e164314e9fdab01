import { RpcHandler } from '@context-gateway/messaging';
import {
  type GetCheckpointRequest,
  type GetConsistencyProofRequest,
  type GetEntryRequest,
  rpc,
  type SearchEntriesRequest,
} from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { LogQueryService } from './log-query.service.js';

/** The log's read side over NATS; the gateway serves it to auditors at /v1/audit/*. */
@Controller()
export class LogHandler {
  constructor(private readonly queries: LogQueryService) {}

  @RpcHandler(rpc.audit.searchEntries)
  search(@Payload() req: SearchEntriesRequest) {
    return this.queries.search(req);
  }

  @RpcHandler(rpc.audit.getEntry)
  getEntry(@Payload() req: GetEntryRequest) {
    return this.queries.getEntry(req);
  }

  @RpcHandler(rpc.audit.getCheckpoint)
  getCheckpoint(@Payload() req: GetCheckpointRequest) {
    return this.queries.getCheckpoint(req);
  }

  @RpcHandler(rpc.audit.getConsistencyProof)
  getConsistencyProof(@Payload() req: GetConsistencyProofRequest) {
    return this.queries.getConsistencyProof(req);
  }
}
