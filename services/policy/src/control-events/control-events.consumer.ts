import { type DescMessage, fromBinary, type MessageShape } from '@bufbuild/protobuf';
import { ensureDurableConsumer, publishDeadLetter } from '@context-gateway/messaging';
import { consumers, type EventDescriptor, events, streams } from '@context-gateway/proto';
import { LOGGER, NATS_CONNECTION } from '@context-gateway/service-kit';
import { AckPolicy, type ConsumerMessages, DeliverPolicy, type JsMsg } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';

import { ControlProgress } from '../rules/control-progress.js';
import { ControlEventsApplier } from './control-events.applier.js';

/**
 * After this many failed attempts an event that is valid but cannot be applied is reported
 * loudly — and retried on, never skipped: skipping a grant revocation because the database
 * was failing over for a few seconds would leave gateways allowing a revoked grant. Only an
 * event that cannot be decoded is dead-lettered (and the cursor moves past it).
 */
const ALERT_AFTER_ATTEMPTS = 5;
/** Longest pause between retries of an event that keeps failing. */
const RETRY_CAP_MS = 30_000;

/**
 * Follows the whole CONTROL stream with one durable consumer that has at most ONE message
 * in flight across every policy replica (max_ack_pending = 1), so events are applied
 * strictly in stream order and the stored cursor is a true "everything up to here"
 * watermark — the property gateways rely on after a grant revocation (docs/policy.md).
 * Control events are rare; order matters more than throughput here.
 */
@Injectable()
export class ControlEventsConsumer implements OnApplicationBootstrap, OnApplicationShutdown {
  private messages: ConsumerMessages | undefined;
  /** Highest skipped sequence not yet in the cursor row, and the timer that will write it. */
  private unpersisted = 0;
  private persistTimer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    @Inject(NATS_CONNECTION) private readonly nc: NatsConnection,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly applier: ControlEventsApplier,
    private readonly progress: ControlProgress,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const stream = streams.control.name;
    const { durable, filterSubject } = consumers.policyControl;
    const consumer = await ensureDurableConsumer(this.nc, stream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: filterSubject,
      // Unlimited: an applicable event is retried until it is applied (see ALERT_AFTER_ATTEMPTS).
      max_deliver: -1,
      ack_wait: nanos(30_000),
      max_ack_pending: 1,
    });
    // The server still hands out one at a time (max_ack_pending = 1); a larger pull avoids a re-pull round trip per event.
    const messages = await consumer.consume({ max_messages: 16 });
    this.messages = messages;
    this.loop = (async () => {
      for await (const m of messages) await this.process(m);
    })().catch((error) => this.logger.error({ err: error }, 'control consumer stopped'));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.messages?.close();
    await this.loop;
    clearTimeout(this.persistTimer);
    await this.persist();
  }

  /** Skipped messages reach the cursor row at most once a second (a restart re-reads them: harmless). */
  private schedulePersist(seq: number): void {
    this.unpersisted = Math.max(this.unpersisted, seq);
    this.persistTimer ??= setTimeout(() => {
      this.persistTimer = undefined;
      void this.persist();
    }, 1_000);
  }

  private async persist(): Promise<void> {
    const seq = this.unpersisted;
    if (seq === 0) return;
    await this.applier
      .persistCursor(seq)
      .catch((error) => this.logger.warn({ err: error }, 'control cursor not persisted; will retry'));
  }

  private async process(m: JsMsg): Promise<void> {
    try {
      if (m.subject === events.applicationChanged.subject) {
        const event = this.decode(m, events.applicationChanged);
        if (event) await this.applier.applicationChanged(event, m.seq);
        else return await this.deadLetter(m, 'invalid');
      } else if (m.subject === events.grantChanged.subject) {
        const event = this.decode(m, events.grantChanged);
        if (event) await this.applier.grantChanged(event, m.seq);
        else return await this.deadLetter(m, 'invalid');
      } else {
        // Nothing to apply (policy's own PolicyChanged, facts for others): no transaction.
        this.schedulePersist(m.seq);
      }
      await m.ackAck();
      this.progress.advance(m.seq);
    } catch (error) {
      const attempt = m.info.deliveryCount;
      const delay = Math.round(Math.random() * Math.min(RETRY_CAP_MS, 200 * 2 ** Math.min(attempt - 1, 16)));
      const line = { err: error, seq: m.seq, subject: m.subject, attempt, retryInMs: delay };
      if (attempt >= ALERT_AFTER_ATTEMPTS)
        this.logger.error(line, 'control event keeps failing; policy decisions wait for it (retrying)');
      else this.logger.warn(line, 'control event failed, will retry');
      m.nak(delay);
    }
  }

  private decode<D extends DescMessage>(m: JsMsg, descriptor: EventDescriptor<D>): MessageShape<D> | undefined {
    try {
      const message = fromBinary(descriptor.message, m.data);
      return (descriptor.validate?.(message) ?? []).length === 0 ? message : undefined;
    } catch {
      return undefined;
    }
  }

  /** Kept verbatim for an operator, and the cursor moves on: one bad event must not stall every gateway. */
  private async deadLetter(m: JsMsg, reason: 'invalid'): Promise<void> {
    this.logger.error({ seq: m.seq, subject: m.subject, reason }, 'control event dead-lettered');
    try {
      await publishDeadLetter(this.nc, streams.control, {
        stream: streams.control.name,
        subject: m.subject,
        streamSeq: m.seq,
        reason,
        code: 'validation_failed',
        message: 'not a valid event for its subject',
        data: m.data,
      });
      await this.applier.persistCursor(m.seq);
      m.term(reason);
      this.progress.advance(m.seq);
    } catch (error) {
      this.logger.error({ err: error, seq: m.seq }, 'dead-lettering failed; the event will come back');
      m.nak(1_000);
    }
  }
}
