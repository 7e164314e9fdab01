import type { DescMessage } from '@bufbuild/protobuf';

/**
 * A reply whose wire bytes the handler wrote itself, for a hot path where the generic
 * protobuf encoder costs more than the work (the shard's query page: `toBinary` grew a zeroed
 * 16 KB buffer for the ~8 KB page and copied it twice, ~6 % of a shard's CPU).
 * NatsRpcServer sends `bytes` as they are, and only for a handler of the contract whose
 * response is `schema` (another schema is answered `internal`): the handler owns the
 * encoding being exactly `schema`'s, which a spec beside it checks against `toBinary`.
 */
export class EncodedReply {
  constructor(
    readonly schema: DescMessage,
    readonly bytes: Uint8Array,
  ) {}
}
