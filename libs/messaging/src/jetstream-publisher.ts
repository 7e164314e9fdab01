import { create, type DescMessage, type MessageInitShape, type MessageShape, toBinary } from '@bufbuild/protobuf';
import { AppError } from '@context-gateway/errors';
import { currentRequestContext, injectTraceHeaders } from '@context-gateway/observability';
import type { EventDescriptor, Validated } from '@context-gateway/proto';
import { jetstream, type JetStreamClient, type PubAck } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';

import { Header } from './headers.js';
import { type MessagingMetrics, messagingMetricsFor } from './messaging.metrics.js';

export interface PublishOptions {
  timeoutMs?: number;
  headers?: Record<string, string>;
}

export interface PublishResult {
  stream: string;
  seq: number;
  /** True when the stream had already stored a message with this Nats-Msg-Id. */
  duplicate: boolean;
}

/**
 * Publishes catalog events to their stream and waits for the stream's acknowledgement:
 * a resolved publish means the message is on disk. The Nats-Msg-Id comes from the
 * descriptor, so a retried publish inside the duplicate window is stored once.
 */
export class JetStreamPublisher {
  private readonly js: JetStreamClient;

  constructor(
    nc: NatsConnection,
    /** Where publish outcomes go; default: the metrics bound to `nc` (bindMessagingMetrics). */
    private readonly metrics: MessagingMetrics | undefined = messagingMetricsFor(nc),
  ) {
    this.js = jetstream(nc);
  }

  /** Validates the message (refusing it with `validation_failed` at the source) and publishes it. */
  async publish<M extends DescMessage>(
    descriptor: EventDescriptor<M>,
    init: MessageInitShape<M>,
    options: PublishOptions = {},
  ): Promise<PublishResult> {
    const message = create(descriptor.message, init);
    const problems = descriptor.validate?.(message) ?? [];
    if (problems.length > 0) {
      // Refuse at the source: a consumer would only dead-letter it.
      throw new AppError('validation_failed', `${descriptor.message.typeName} failed validation`, problems);
    }
    return this.#send(descriptor, message, toBinary(descriptor.message, message), options);
  }

  /**
   * Publishes a message validateEvent (or auditEventBatchOf) passed and froze, without
   * checking it again, as `bytes`: the message written already, for a publisher that
   * validates and encodes each part as it comes in (the gateway's audit group commit, whose
   * hand encoder audit-event-bytes.spec.ts proves equal to toBinary's). `bytes` must be
   * `toBinary(descriptor.message, message)`'s; the message still names the Nats-Msg-Id.
   * Only the validators make a Validated message.
   */
  publishEncoded<M extends DescMessage>(
    descriptor: EventDescriptor<M>,
    message: Validated<MessageShape<M>>,
    bytes: Uint8Array,
    options: PublishOptions = {},
  ): Promise<PublishResult> {
    return this.#send(descriptor, message, bytes, options);
  }

  async #send<M extends DescMessage>(
    descriptor: EventDescriptor<M>,
    message: MessageShape<M>,
    bytes: Uint8Array,
    options: PublishOptions,
  ): Promise<PublishResult> {
    const h = natsHeaders();
    for (const [key, value] of Object.entries(options.headers ?? {})) h.set(key, value);
    const ctx = currentRequestContext();
    if (ctx) h.set(Header.requestId, ctx.requestId);
    injectTraceHeaders((key, value) => h.set(key, value));

    let ack: PubAck;
    try {
      ack = await this.js.publish(descriptor.subject, bytes, {
        msgID: descriptor.messageId(message),
        headers: h,
        expect: { streamName: descriptor.stream.name },
        timeout: options.timeoutMs ?? 5_000,
      });
    } catch (error) {
      this.metrics?.published.inc({ stream: descriptor.stream.name, outcome: 'error' });
      throw new AppError(
        'service_unavailable',
        `The ${descriptor.stream.name} stream did not acknowledge the message`,
        [],
        { cause: error },
      );
    }
    this.metrics?.published.inc({ stream: descriptor.stream.name, outcome: 'ok' });
    return { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate };
  }
}
