import { randomUUID } from 'node:crypto';

import { type DescMessage, fromBinary, type MessageShape } from '@bufbuild/protobuf';
import { AppError } from '@context-gateway/errors';
import { extractTraceContext, runWithRequestContext, withSpan } from '@context-gateway/observability';
import { deadLetterSubject, type EventDescriptor, type StreamDescriptor } from '@context-gateway/proto';
import {
  AckPolicy,
  type Consumer,
  type ConsumerConfig,
  type ConsumerMessages,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { headers as natsHeaders, nanos, type NatsConnection } from '@nats-io/transport-node';
import { SpanKind } from '@opentelemetry/api';
import type { Logger } from 'pino';

import { Header } from './headers.js';
import { type MessagingMetrics, messagingMetricsFor } from './messaging.metrics.js';

export interface DeliveryInfo {
  /** 1 on first delivery; more after naks, ack timeouts or a crashed worker. */
  deliveryCount: number;
  streamSeq: number;
  msgId: string | undefined;
  /** Tells JetStream the message is still being worked on: its ack wait starts over (long jobs). */
  working(): void;
}

export interface ConsumeOptions {
  /** Durable name: workers sharing it share the work and the position survives restarts. */
  durable: string;
  /** After this many deliveries the message is dead-lettered instead of retried forever. */
  maxDeliver?: number;
  /** How long a worker may hold a message before JetStream redelivers it elsewhere. */
  ackWaitMs?: number;
  /** Messages processed at once by this process. */
  concurrency?: number;
  /** Retry delay after a failure: base * 2^(attempt-1) with full jitter, capped. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /**
   * Called with messages that can never succeed (invalid, or out of deliveries). By default
   * they are copied verbatim to the DEAD_LETTERS stream before being terminated; if that copy
   * fails the message is left unacked and comes back, so nothing is lost.
   */
  onDeadLetter?: (info: DeadLetter) => Promise<void> | void;
  /** Where outcomes, handling time and the backlog go; default: the metrics bound to `nc` (bindMessagingMetrics). */
  metrics?: MessagingMetrics;
  /** How often the backlog (`jetstream_consumer_pending`) is read from the server. */
  pendingSampleMs?: number;
}

export interface DeadLetter {
  stream: string;
  subject: string;
  streamSeq: number;
  reason: 'invalid' | 'max_deliveries';
  code: string;
  message: string;
  data: Uint8Array;
}

/**
 * The durable pull consumer `config.durable_name` on `stream`: created, or — when it exists —
 * brought up to date with `config` (a redeploy that changes ack_wait and the like).
 */
export async function ensureDurableConsumer(
  nc: NatsConnection,
  stream: string,
  config: Partial<ConsumerConfig> & { durable_name: string },
): Promise<Consumer> {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.consumers.info(stream, config.durable_name);
    await jsm.consumers.update(stream, config.durable_name, config);
  } catch (error) {
    if (!(error instanceof Error && /consumer not found/i.test(error.message))) throw error;
    await jsm.consumers.add(stream, config);
  }
  return jetstream(nc).consumers.get(stream, config.durable_name);
}

/** Keeps a message that can never be processed in DEAD_LETTERS, verbatim, with why (headers `cg-dead-*`, `cg-origin-*`). */
export async function publishDeadLetter(nc: NatsConnection, origin: StreamDescriptor, d: DeadLetter): Promise<void> {
  const h = natsHeaders();
  h.set('cg-dead-reason', d.reason);
  h.set('cg-dead-code', d.code);
  h.set('cg-origin-stream', d.stream);
  h.set('cg-origin-subject', d.subject);
  h.set('cg-origin-seq', String(d.streamSeq));
  await jetstream(nc).publish(deadLetterSubject(origin), d.data, { headers: h, msgID: `${d.stream}:${d.streamSeq}` });
}

export interface PendingSampler {
  stop(): void;
}

/**
 * Reads a durable consumer's backlog from the server every `everyMs` (one consumer-info
 * request, not per message) into `jetstream_consumer_pending`: what is waiting
 * (num_pending) plus what is delivered but not yet acked (num_ack_pending). A failed read
 * keeps the last value; the gauge is a trend, and NATS being down has its own alert.
 * Also used by consumers that pull on their own (the audit log writer).
 */
export function samplePending(
  nc: NatsConnection,
  stream: string,
  durable: string,
  metrics: MessagingMetrics,
  everyMs = 15_000,
): PendingSampler {
  const labels = { stream, consumer: durable };
  let reading = false;
  const manager = jetstreamManager(nc);
  // Observed now: a failure shows up as a failed read below, not an unhandled rejection.
  manager.catch(() => undefined);
  const read = async () => {
    if (reading || nc.isClosed()) return;
    reading = true;
    try {
      const info = await (await manager).consumers.info(stream, durable);
      metrics.consumerPending.set(labels, info.num_pending + info.num_ack_pending);
    } catch {
      // Keep the last value: see above.
    } finally {
      reading = false;
    }
  };
  void read();
  const timer = setInterval(() => void read(), everyMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      // A stopped consumer (this replica) no longer vouches for the number.
      metrics.consumerPending.remove(labels);
    },
  };
}

export interface RunningConsumer {
  /** Stops pulling, waits for in-flight messages to be acked or nak'ed. */
  stop(): Promise<void>;
}

/**
 * A durable pull consumer with explicit acks. A message is acked only after the handler
 * resolved (its effects committed); a failure naks it with back-off; a message that fails
 * decoding or validation can never succeed, so it is terminated and reported as a dead
 * letter rather than redelivered or silently dropped.
 */
export async function consumeEvents<M extends DescMessage>(
  nc: NatsConnection,
  descriptor: EventDescriptor<M>,
  options: ConsumeOptions,
  handler: (message: MessageShape<M>, delivery: DeliveryInfo) => Promise<void>,
  logger: Logger,
): Promise<RunningConsumer> {
  const maxDeliver = options.maxDeliver ?? 5;
  const stream = descriptor.stream.name;
  const config = {
    durable_name: options.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: descriptor.subject,
    // Unlimited on the server; the limit is enforced here. A server-side limit would drop a
    // message whose last delivery failed to reach the dead-letter stream (or whose worker died).
    max_deliver: -1,
    ack_wait: nanos(options.ackWaitMs ?? 30_000),
    max_ack_pending: Math.max(1_000, (options.concurrency ?? 8) * 4),
  };
  const consumer = await ensureDurableConsumer(nc, stream, config);
  const concurrency = options.concurrency ?? 8;
  const messages: ConsumerMessages = await consumer.consume({ max_messages: concurrency * 2 });
  const inFlight = new Set<Promise<void>>();
  const base = options.retryBaseMs ?? 500;
  const cap = options.retryMaxMs ?? 30_000;

  const onDeadLetter = options.onDeadLetter ?? ((d: DeadLetter) => publishDeadLetter(nc, descriptor.stream, d));
  const metrics = options.metrics ?? messagingMetricsFor(nc);
  const labels = { stream, consumer: options.durable };
  const sampler = metrics ? samplePending(nc, stream, options.durable, metrics, options.pendingSampleMs) : undefined;

  const deadLetter = async (m: JsMsg, reason: DeadLetter['reason'], error: AppError): Promise<void> => {
    logger.error(
      { stream, seq: m.seq, subject: m.subject, reason, errorCode: error.code, problems: error.problems },
      'message dead-lettered',
    );
    try {
      await onDeadLetter({
        stream,
        subject: m.subject,
        streamSeq: m.seq,
        reason,
        code: error.code,
        message: error.message,
        data: m.data,
      });
    } catch (failure) {
      // Not copied anywhere yet: keep it in the stream and try again shortly.
      logger.error({ stream, seq: m.seq, err: failure }, 'dead-lettering failed; the message stays and comes back');
      m.nak(Math.min(cap, base * 4));
      metrics?.consumerMessages.inc({ ...labels, outcome: 'retried' });
      return;
    }
    m.term(`${reason}: ${error.code}`);
    metrics?.deadLetters.inc({ stream, reason });
    metrics?.consumerMessages.inc({ ...labels, outcome: 'dead_lettered' });
  };

  const process = async (m: JsMsg): Promise<void> => {
    const parent = extractTraceContext((key) => m.headers?.get(key) || undefined);
    const requestId = m.headers?.get(Header.requestId) || randomUUID();
    await runWithRequestContext({ requestId }, () =>
      withSpan(
        `consume ${descriptor.subject}`,
        {
          kind: SpanKind.CONSUMER,
          parent,
          attributes: { 'messaging.system': 'nats', 'messaging.destination.name': m.subject },
        },
        async () => {
          let message: MessageShape<M>;
          try {
            message = fromBinary(descriptor.message, m.data);
          } catch {
            return deadLetter(
              m,
              'invalid',
              new AppError('malformed_request', `Not a valid ${descriptor.message.typeName}`),
            );
          }
          const problems = descriptor.validate?.(message) ?? [];
          if (problems.length > 0) {
            return deadLetter(
              m,
              'invalid',
              new AppError('validation_failed', `${descriptor.message.typeName} failed validation`, problems),
            );
          }
          const delivery: DeliveryInfo = {
            deliveryCount: m.info.deliveryCount,
            streamSeq: m.seq,
            msgId: m.headers?.get('Nats-Msg-Id') || undefined,
            working: () => m.working(),
          };
          const started = performance.now();
          try {
            await handler(message, delivery);
            await m.ackAck();
            metrics?.consumerMessages.inc({ ...labels, outcome: 'acked' });
          } catch (thrown) {
            const error = AppError.from(thrown);
            if (delivery.deliveryCount >= maxDeliver) return deadLetter(m, 'max_deliveries', error);
            const delay = Math.round(Math.random() * Math.min(cap, base * 2 ** (delivery.deliveryCount - 1)));
            logger.warn(
              {
                stream,
                seq: m.seq,
                errorCode: error.code,
                err: error.cause ?? error,
                attempt: delivery.deliveryCount,
                retryInMs: delay,
              },
              'message failed, will retry',
            );
            m.nak(delay);
            metrics?.consumerMessages.inc({ ...labels, outcome: 'retried' });
          } finally {
            metrics?.consumerDuration.observe(labels, (performance.now() - started) / 1000);
          }
        },
      ),
    );
  };

  const loop = (async () => {
    for await (const m of messages) {
      const work = process(m)
        .catch((error) => logger.error({ err: error, stream, seq: m.seq }, 'consumer handler crashed'))
        .finally(() => inFlight.delete(work));
      inFlight.add(work);
      while (inFlight.size >= concurrency) await Promise.race(inFlight);
    }
  })();

  return {
    async stop() {
      sampler?.stop();
      await messages.close();
      await loop;
      await Promise.allSettled([...inFlight]);
    },
  };
}
