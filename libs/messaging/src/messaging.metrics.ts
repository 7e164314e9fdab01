import type { RpcDescriptor } from '@context-gateway/proto';
import type { NatsConnection } from '@nats-io/transport-node';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Seconds; RPCs answer in milliseconds, a deadline is a few seconds. */
const RPC_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Seconds; a consumed message may be a whole sync run (minutes). */
const HANDLE_BUCKETS = [0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 180, 600];

/**
 * What the bus layer reports: request/reply per catalog subject on both ends, and the
 * JetStream consumers' backlog, outcomes and dead letters. Labels are bounded: subjects
 * are catalog templates (a shard's `ps.v1.shard.3.query` is counted as
 * `ps.v1.shard.*.query`), outcomes are `ok` or an error code from the one catalog.
 */
export class MessagingMetrics {
  readonly rpcServerRequests: Counter<'subject' | 'outcome'>;
  readonly rpcServerDuration: Histogram<'subject'>;
  readonly rpcClientRequests: Counter<'subject' | 'outcome'>;
  readonly rpcClientDuration: Histogram<'subject'>;
  readonly consumerPending: Gauge<'stream' | 'consumer'>;
  readonly consumerMessages: Counter<'stream' | 'consumer' | 'outcome'>;
  readonly consumerDuration: Histogram<'stream' | 'consumer'>;
  readonly deadLetters: Counter<'stream' | 'reason'>;
  readonly published: Counter<'stream' | 'outcome'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.rpcServerRequests = new Counter({
      name: 'nats_rpc_server_requests_total',
      help: 'Requests handled by this process, by catalog subject and outcome (ok or the error code).',
      labelNames: ['subject', 'outcome'],
      registers,
    });
    this.rpcServerDuration = new Histogram({
      name: 'nats_rpc_server_duration_seconds',
      help: 'Time from receiving a request to sending its reply.',
      labelNames: ['subject'],
      buckets: RPC_BUCKETS,
      registers,
    });
    this.rpcClientRequests = new Counter({
      name: 'nats_rpc_client_requests_total',
      help: 'Requests this process sent, by catalog subject and outcome (ok or the error code).',
      labelNames: ['subject', 'outcome'],
      registers,
    });
    this.rpcClientDuration = new Histogram({
      name: 'nats_rpc_client_duration_seconds',
      help: 'Time from sending a request to its reply (or failure), as the caller saw it.',
      labelNames: ['subject'],
      buckets: RPC_BUCKETS,
      registers,
    });
    this.consumerPending = new Gauge({
      name: 'jetstream_consumer_pending',
      help: 'Messages of a durable consumer not yet acked (num_pending + num_ack_pending), sampled periodically. Every replica reports the same consumer: aggregate with max.',
      labelNames: ['stream', 'consumer'],
      registers,
    });
    this.consumerMessages = new Counter({
      name: 'jetstream_consumer_messages_total',
      help: 'Messages this process finished with: acked, retried (nak with back-off) or dead_lettered.',
      labelNames: ['stream', 'consumer', 'outcome'],
      registers,
    });
    this.consumerDuration = new Histogram({
      name: 'jetstream_consumer_handle_duration_seconds',
      help: 'Time the handler took per message, retries included.',
      labelNames: ['stream', 'consumer'],
      buckets: HANDLE_BUCKETS,
      registers,
    });
    this.deadLetters = new Counter({
      name: 'jetstream_dead_letters_total',
      help: 'Messages copied to DEAD_LETTERS by this process: invalid (never decodable) or max_deliveries.',
      labelNames: ['stream', 'reason'],
      registers,
    });
    this.published = new Counter({
      name: 'jetstream_publish_total',
      help: 'Events published and acknowledged by their stream (ok), or not acknowledged (error).',
      labelNames: ['stream', 'outcome'],
      registers,
    });
  }
}

/** The subject as a metric label: the catalog template, so shard numbers do not multiply series. */
export function subjectLabel(descriptor: Pick<RpcDescriptor, 'subject' | 'shardSubject'>): string {
  return descriptor.shardSubject ? descriptor.subject.replace(/\.shard\.\d+\./, '.shard.*.') : descriptor.subject;
}

// Keyed by connection rather than a process global: everything built on the runtime's
// connection (its RpcClient, publishers a service makes itself, consumers) reports into the
// runtime's registry without each call site passing it, and two runtimes in one test
// process keep their numbers apart.
const bound = new WeakMap<NatsConnection, MessagingMetrics>();

/** Makes everything that uses `nc` report into `metrics`. Called once by the runtime after connecting. */
export function bindMessagingMetrics(nc: NatsConnection, metrics: MessagingMetrics): void {
  bound.set(nc, metrics);
}

/** The metrics bound to `nc`, if any (none in tests that build their own connection). */
export function messagingMetricsFor(nc: NatsConnection): MessagingMetrics | undefined {
  return bound.get(nc);
}
