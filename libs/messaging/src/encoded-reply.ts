import type { DescMessage } from '@bufbuild/protobuf';

/**
 * Marks an EncodedReply whichever loaded copy of this module made it (src/ and dist/ both
 * loaded in one process, as under Jest when one import resolves to the source and another to
 * dist/; or code outside a service's bundle loading the library's dist/ beside the bundle's own
 * copy): `instanceof` knows one copy's class only, and a reply it missed would go through
 * `create(schema, reply)`, which drops the unknown keys and sends an empty message without a
 * word. `Symbol.for` is one symbol across every copy.
 */
const BRAND = Symbol.for('@context-gateway/messaging.EncodedReply');

/**
 * A reply whose wire bytes the handler wrote itself, for a hot path where the generic
 * protobuf encoder costs more than the work (the shard's query page: `toBinary` grew a zeroed
 * 16 KB buffer for the ~8 KB page and copied it twice, ~6 % of a shard's CPU).
 * NatsRpcServer sends `bytes` as they are, and only for a handler of the contract whose
 * response is `schema` (another message type is answered `internal`): the handler owns the
 * encoding being exactly `schema`'s, which a spec beside it checks against `toBinary`.
 */
export class EncodedReply {
  readonly [BRAND] = true;

  constructor(
    readonly schema: DescMessage,
    readonly bytes: Uint8Array,
  ) {}

  /** An EncodedReply from any loaded copy of this module (see BRAND). */
  static is(value: unknown): value is EncodedReply {
    return typeof value === 'object' && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
  }
}
