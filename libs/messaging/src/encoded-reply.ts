import { create, type DescMessage, toBinary } from '@bufbuild/protobuf';
import { AppError } from '@context-gateway/errors';

/**
 * Marks an EncodedReply whichever loaded copy of this module made it (src/ and dist/ both
 * loaded in one process, as under Jest when one import resolves to the source and another to
 * dist/; or code outside a service's bundle loading the library's dist/ beside the bundle's own
 * copy): `instanceof` knows one copy's class only, and a reply it missed would go through
 * `create(schema, reply)`, which drops the unknown keys and sends an empty message without a
 * word. `Symbol.for` is one symbol across every copy. EncodedRequest is marked the same way.
 */
const BRAND = Symbol.for('@context-gateway/messaging.EncodedReply');
const REQUEST_BRAND = Symbol.for('@context-gateway/messaging.EncodedRequest');

/** Whether `value` carries `brand` (made by any loaded copy of this module). */
function branded(value: unknown, brand: symbol): boolean {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[brand] === true;
}

/** A message's wire bytes, written by hand, and the message type they claim to be. */
export abstract class EncodedMessage {
  constructor(
    readonly schema: DescMessage,
    readonly bytes: Uint8Array,
  ) {}
}

/**
 * A reply whose wire bytes the handler wrote itself, for a hot path where the generic
 * protobuf encoder costs more than the work (the shard's query page: `toBinary` grew a zeroed
 * 16 KB buffer for the ~8 KB page and copied it twice, ~6 % of a shard's CPU).
 * NatsRpcServer sends `bytes` as they are, and only for a handler of the contract whose
 * response is `schema` (another message type is answered `internal`): the handler owns the
 * encoding being exactly `schema`'s, which a spec beside it checks against `toBinary`.
 */
export class EncodedReply extends EncodedMessage {
  readonly [BRAND] = true;

  /** An EncodedReply from any loaded copy of this module (see BRAND). */
  static is(value: unknown): value is EncodedReply {
    return branded(value, BRAND);
  }
}

/**
 * A request whose wire bytes the caller wrote itself, the client side of EncodedReply: the
 * sync-worker's 500-record writes, where `create` + `toBinary` walked every record
 * reflectively after each body had been copied into a Uint8Array of its own. RpcClient sends
 * `bytes` as they are, and only on a contract whose request is `schema` (another is refused
 * `internal` before anything is sent); the caller owns the bytes being exactly `schema`'s,
 * which a spec beside its encoder checks against `toBinary`. The server checks them as it
 * checks any request (decoded, then validated).
 */
export class EncodedRequest extends EncodedMessage {
  readonly [REQUEST_BRAND] = true;

  /** An EncodedRequest from any loaded copy of this module (see BRAND). */
  static is(value: unknown): value is EncodedRequest {
    return branded(value, REQUEST_BRAND);
  }
}

/**
 * What goes on the wire for `value` as a `schema` message (`where`: the subject, for the error):
 * the bytes of an EncodedReply/EncodedRequest (`kind`: the one this side takes) that
 * claims `schema`, or a plain message encoded by the contract's hand `encode` when it has one
 * (decided here only), else by `toBinary`. Bytes of another type would reach the peer as
 * garbage (or as a wrong but valid message): refused `internal`, nothing sent. Compared by
 * type name, not descriptor identity: a second loaded copy of the proto package has its own
 * descriptor objects for the same message, whose wire bytes are the same.
 */
export function wireBytes(
  schema: DescMessage,
  value: unknown,
  kind: { is(value: unknown): value is EncodedMessage },
  where: string,
  encode?: (message: never) => Uint8Array,
): Uint8Array {
  if (!kind.is(value)) return encode ? encode(value as never) : toBinary(schema, create(schema, value as never));
  if (value.schema.typeName !== schema.typeName)
    throw new AppError(
      'internal',
      `A ${value.schema.typeName} was encoded for ${where}, which takes ${schema.typeName}`,
    );
  return value.bytes;
}
