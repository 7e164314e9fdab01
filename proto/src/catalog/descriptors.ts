import type { DescMessage, MessageInitShape, MessageShape } from '@bufbuild/protobuf';

import type { ServiceName } from '../services.js';
import type { ValidationProblem } from './validation.js';

/**
 * Services allowed on one side of a subject: never empty, so a subject nobody may use
 * cannot be declared by accident. NATS permissions are generated from these lists
 * (libs/messaging nats-permissions.ts): a service not listed is refused by the server.
 */
export type ServiceList = readonly [ServiceName, ...ServiceName[]];

/**
 * A request/reply contract: the subject, the protobuf types on both sides and the
 * semantic checks a request must pass before a handler sees it. Both ends take the
 * subject and types from here, so a subject name is written exactly once.
 */
export interface RpcDescriptor<Req extends DescMessage = DescMessage, Res extends DescMessage = DescMessage> {
  readonly kind: 'rpc';
  readonly subject: string;
  readonly request: Req;
  readonly response: Res;
  /** How long a caller waits by default; callers may pass a shorter deadline. */
  readonly timeoutMs: number;
  /**
   * Who may send this request. The answering service is the one whose subject prefix the
   * subject starts with; it alone may subscribe to it.
   */
  readonly callers: ServiceList;
  /** Checks beyond what protobuf decoding guarantees (proto3 has no required fields). */
  readonly validate?: (message: MessageShape<Req>) => ValidationProblem[];
  /**
   * Set for a sharded contract (`ps.v1.shard.<n>.<verb>`): the subject of shard n. `subject`
   * is then shard 0's; callers pass `{ subject: d.shardSubject(n) }`, and a server started
   * with a shard number subscribes its own.
   */
  readonly shardSubject?: (shard: number) => string;
  /**
   * Hand-written codecs for a contract on the hot path (the records query), in place of
   * protobuf-es's reflective `toBinary(create(request, m))` / `fromBinary(type, bytes)`: RpcClient
   * encodes the request and decodes the reply with them, NatsRpcServer decodes the request.
   * Each must equal the generic function (a spec beside it proves it) — byte for byte when
   * encoding, value for value when decoding anything fromBinary reads — and throw where
   * fromBinary throws; it may refuse more (a known field with the wrong wire type).
   * Absent: the generic functions.
   */
  encodeRequest?(this: void, message: MessageInitShape<Req>): Uint8Array;
  decodeRequest?(this: void, bytes: Uint8Array): MessageShape<Req>;
  decodeResponse?(this: void, bytes: Uint8Array): MessageShape<Res>;
}

export function defineRpc<Req extends DescMessage, Res extends DescMessage>(
  descriptor: Omit<RpcDescriptor<Req, Res>, 'kind' | 'timeoutMs'> & { timeoutMs?: number },
): RpcDescriptor<Req, Res> {
  return { kind: 'rpc', timeoutMs: 2_000, ...descriptor };
}

/**
 * A contract answered per shard: `<prefix>.v1.shard.<n>.<verb>`. Each shard process
 * subscribes only its own subject, so a request reaches exactly the owner of the data.
 */
export function defineShardRpc<Req extends DescMessage, Res extends DescMessage>(
  descriptor: Omit<RpcDescriptor<Req, Res>, 'kind' | 'timeoutMs' | 'subject' | 'shardSubject'> & {
    prefix: string;
    verb: string;
    timeoutMs?: number;
  },
): RpcDescriptor<Req, Res> {
  const { prefix, verb, ...rest } = descriptor;
  const shardSubject = (shard: number): string => {
    if (!Number.isInteger(shard) || shard < 0) throw new Error(`invalid shard number ${shard}`);
    return `${prefix}.v1.shard.${shard}.${verb}`;
  };
  return { kind: 'rpc', timeoutMs: 2_000, ...rest, subject: shardSubject(0), shardSubject };
}

/** A JetStream stream: what must not be lost lives here, never on plain subjects. */
export interface StreamDescriptor {
  readonly name: string;
  readonly subjects: readonly string[];
  /** workqueue: each message is consumed once, then removed; limits: kept for replay. */
  readonly retention: 'workqueue' | 'limits';
  /** Window in which a repeated Nats-Msg-Id is dropped as a duplicate. */
  readonly duplicateWindowMs: number;
  readonly maxAgeMs: number;
  readonly description: string;
  /**
   * Services that read the stream with consumers of their own making (ordered, in memory:
   * the gateway's CONTROL readers), besides the durable consumers in `consumers`. They may
   * create consumers on it, never delete one or the stream.
   */
  readonly readers?: readonly ServiceName[];
  /**
   * Where the stream republishes the headers of every message it stores (NATS RePublish:
   * `Nats-Sequence`, `Nats-Last-Sequence`, ...), a core subject pattern with the same
   * wildcards as `subjects`. The server sends each copy before the publisher's ack, so a
   * reader subscribed here learns a stored sequence no later than the publisher does; the
   * readers may subscribe to it. Set at creation (servers before 2.10 cannot add it later).
   */
  readonly republish?: { readonly source: string; readonly destination: string };
}

/** One kind of message published into a stream. */
export interface EventDescriptor<M extends DescMessage = DescMessage> {
  readonly kind: 'event';
  readonly stream: StreamDescriptor;
  readonly subject: string;
  readonly message: M;
  /** Who may publish it: only they get the publish right on `subject`. */
  readonly publishers: ServiceList;
  readonly validate?: (message: MessageShape<M>) => ValidationProblem[];
  /** The Nats-Msg-Id for a message: the de-duplication key. */
  readonly messageId: (message: MessageShape<M>) => string;
  /**
   * A hand-written decoder for an event on the hot path (the audit log's), in place of
   * protobuf-es's reflective `fromBinary(message, bytes)`, as RpcDescriptor.decodeRequest:
   * equal to fromBinary on anything it reads (a spec beside it proves it), throwing where
   * fromBinary throws; it may refuse more (a known field with the wrong wire type, a nested
   * message overrunning its length). Absent: fromBinary.
   */
  decode?(this: void, bytes: Uint8Array): MessageShape<M>;
}

export function defineEvent<M extends DescMessage>(descriptor: Omit<EventDescriptor<M>, 'kind'>): EventDescriptor<M> {
  return { kind: 'event', ...descriptor };
}

/**
 * A durable JetStream consumer: its owner pulls and acks through it and may tune it (ack
 * wait, max ack pending) but nothing else. The NATS bootstrap creates it as a pull consumer
 * before any service runs, so its owner can never turn it into a push consumer delivering
 * elsewhere; the owner's only JetStream rights are on this name with this filter.
 */
export interface ConsumerDescriptor {
  readonly service: ServiceName;
  readonly stream: StreamDescriptor;
  readonly durable: string;
  /** One subject (possibly a wildcard); the create right is scoped to exactly it. */
  readonly filterSubject: string;
}
