import { create, type DescMessage, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { AppError } from '@context-gateway/errors';
import { currentRequestContext, injectTraceHeaders } from '@context-gateway/observability';
import type { EventDescriptor } from '@context-gateway/proto';
import { jetstream, type JetStreamClient, type PubAck } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';

import { Header } from './headers.js';
import { type MessagingMetrics, messagingMetricsFor } from './messaging.metrics.js';

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

  async publish<M extends DescMessage>(
    descriptor: EventDescriptor<M>,
    init: MessageInitShape<M>,
    options: {
      timeoutMs?: number;
      headers?: Record<string, string>;
      /**
       * The caller has already held the message to everything the descriptor's validation
       * checks, and vouches for it: it is not checked a second time here. For a publisher
       * whose messages are assembled from parts each validated as it came in (the gateway's
       * audit group commit: every event on append, and no event id twice in its batch).
       */
      validated?: boolean;
    } = {},
  ): Promise<PublishResult> {
    const message = create(descriptor.message, init);
    const problems = options.validated ? [] : (descriptor.validate?.(message) ?? []);
    if (problems.length > 0) {
      // Refuse at the source: a consumer would only dead-letter it.
      throw new AppError('validation_failed', `${descriptor.message.typeName} failed validation`, problems);
    }
    const h = natsHeaders();
    for (const [key, value] of Object.entries(options.headers ?? {})) h.set(key, value);
    const ctx = currentRequestContext();
    if (ctx) h.set(Header.requestId, ctx.requestId);
    injectTraceHeaders((key, value) => h.set(key, value));

    let ack: PubAck;
    try {
      ack = await this.js.publish(descriptor.subject, toBinary(descriptor.message, message), {
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
