import { type DescMessage, fromBinary, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import { type Clock, systemClock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { currentRequestContext, injectTraceHeaders, withSpan } from '@context-gateway/observability';
import type { RpcDescriptor } from '@context-gateway/proto';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { SpanKind } from '@opentelemetry/api';

import { EncodedRequest, wireBytes } from './encoded-reply.js';
import { Header, ReplyStatus } from './headers.js';
import { type MessagingMetrics, messagingMetricsFor, subjectLabel } from './messaging.metrics.js';
import { MuxRequestError, requestMuxOf } from './request-mux.js';
import { decodeErrorReply } from './rpc-codec.js';

export interface RequestOptions {
  /** Overrides the descriptor's default; the remote side sees it as an absolute deadline. */
  timeoutMs?: number;
  /** For templated subjects (e.g. a shard's), the concrete subject to send to. */
  subject?: string;
}

/**
 * Typed request/reply over NATS: the request is encoded with the descriptor's protobuf
 * type, the reply decoded with its response type, and an error reply rebuilt as the
 * AppError the remote threw. Transport failures become stable codes too.
 */
export class RpcClient {
  /** The connection's inboxPrefix, read here so a nats.js that no longer exposes it fails at boot. */
  private readonly inboxPrefix: string | undefined;

  constructor(
    private readonly nc: NatsConnection,
    /** Dates the absolute deadline the remote side checks. */
    private readonly clock: Clock = systemClock,
    /** Where call counts and durations go; default: the metrics bound to `nc` (bindMessagingMetrics). */
    private readonly metrics: MessagingMetrics | undefined = messagingMetricsFor(nc),
  ) {
    this.inboxPrefix = inboxPrefixOf(nc);
  }

  async request<Req extends DescMessage, Res extends DescMessage>(
    descriptor: RpcDescriptor<Req, Res>,
    message: MessageInitShape<Req> | EncodedRequest,
    options: RequestOptions = {},
  ): Promise<MessageShape<Res>> {
    if (!this.metrics) return this.send(descriptor, message, options);
    const started = performance.now();
    const labels = labelsOf(descriptor);
    let outcome = 'ok';
    try {
      return await this.send(descriptor, message, options);
    } catch (error) {
      outcome = error instanceof AppError ? error.code : 'internal';
      throw error;
    } finally {
      this.metrics.rpcClientRequests.inc(outcome === 'ok' ? labels.ok : { subject: labels.subject.subject, outcome });
      this.metrics.rpcClientDuration.observe(labels.subject, (performance.now() - started) / 1000);
    }
  }

  private async send<Req extends DescMessage, Res extends DescMessage>(
    descriptor: RpcDescriptor<Req, Res>,
    message: MessageInitShape<Req> | EncodedRequest,
    options: RequestOptions = {},
  ): Promise<MessageShape<Res>> {
    const subject = options.subject ?? descriptor.subject;
    const timeoutMs = options.timeoutMs ?? descriptor.timeoutMs;
    // A contract with a hand codec (the records query) skips protobuf-es's reflective one.
    const payload = wireBytes(descriptor.request, message, EncodedRequest, subject, descriptor.encodeRequest);

    return withSpan(
      `rpc ${subject}`,
      { kind: SpanKind.CLIENT, attributes: { 'messaging.system': 'nats', 'messaging.destination.name': subject } },
      async () => {
        // A fresh headers object, so nothing is there to replace: `append` adds the value to
        // its key (it looks the key up too); `set` would delete the key and then append it.
        const h = natsHeaders();
        h.append(Header.deadline, String(this.clock.now() + timeoutMs));
        const ctx = currentRequestContext();
        if (ctx) h.append(Header.requestId, ctx.requestId);
        injectTraceHeaders((key, value) => h.set(key, value));

        let reply;
        try {
          // Inside the try: on a closed or draining connection, making a new mux (subscribing
          // its inbox) throws, and that is a request that could not be sent.
          reply = await requestMuxOf(this.nc, this.inboxPrefix).request(subject, payload, h, timeoutMs);
        } catch (error) {
          throw transportError(error, subject);
        }
        if (reply.headers?.get(Header.status) === ReplyStatus.error) {
          throw decodeErrorReply(reply.data);
        }
        try {
          return descriptor.decodeResponse
            ? descriptor.decodeResponse(reply.data)
            : fromBinary(descriptor.response, reply.data);
        } catch {
          throw new AppError('internal', `The reply on ${subject} is not a valid ${descriptor.response.typeName}`);
        }
      },
    );
  }
}

/**
 * A descriptor's metric labels, made once: the subject label is a regex away from the subject.
 * Frozen: prom-client keeps the first labels object it is given for a series, so these are
 * shared with it and a change to one would relabel that series.
 */
interface DescriptorLabels {
  subject: { subject: string };
  ok: { subject: string; outcome: string };
}
const descriptorLabels = new WeakMap<RpcDescriptor, DescriptorLabels>();

function labelsOf(descriptor: RpcDescriptor): DescriptorLabels {
  let labels = descriptorLabels.get(descriptor);
  if (!labels) {
    const subject = subjectLabel(descriptor);
    labels = Object.freeze({
      subject: Object.freeze({ subject }),
      ok: Object.freeze({ subject, outcome: 'ok' }),
    });
    descriptorLabels.set(descriptor, labels);
  }
  return labels;
}

/**
 * The `inboxPrefix` the connection was made with: nats.js keeps its options on the connection
 * object (`NatsConnectionImpl.options`, not in the NatsConnection interface; @nats-io/nats-core
 * is pinned at 3.4.0 by its patch). request-mux.int-spec.ts fails if replies stop arriving
 * under a prefix a service's rights are limited to.
 */
function inboxPrefixOf(nc: NatsConnection): string | undefined {
  const options = (nc as { options?: { inboxPrefix?: unknown } }).options;
  if (!options) throw new Error('RpcClient: the NATS connection carries no options (has nats.js changed?)');
  return typeof options.inboxPrefix === 'string' ? options.inboxPrefix : undefined;
}

function transportError(error: unknown, subject: string): AppError {
  if (error instanceof MuxRequestError && error.reason === 'no_responders') {
    return new AppError('service_unavailable', `No service answers on ${subject}`, [], { cause: error });
  }
  if (error instanceof MuxRequestError && error.reason === 'refused') {
    return new AppError('service_unavailable', `NATS refused the request on ${subject}`, [], { cause: error });
  }
  if (error instanceof MuxRequestError && error.reason === 'timeout') {
    return new AppError('deadline_exceeded', `No reply on ${subject} before the deadline`, [], { cause: error });
  }
  return new AppError('service_unavailable', `The request on ${subject} could not be sent`, [], { cause: error });
}
