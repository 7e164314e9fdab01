import { randomUUID } from 'node:crypto';

import { fromBinary } from '@bufbuild/protobuf';
import { type Clock, systemClock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { extractTraceContext, runWithRequestContext, withSpan } from '@context-gateway/observability';
import type { RpcDescriptor } from '@context-gateway/proto';
import { headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { CustomTransportStrategy, MessageHandler } from '@nestjs/microservices';
import { Server } from '@nestjs/microservices';
import { SpanKind } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { isObservable, lastValueFrom } from 'rxjs';

import { EncodedReply, wireBytes } from './encoded-reply.js';
import { Header, ReplyStatus } from './headers.js';
import { type MessagingMetrics, messagingMetricsFor, subjectLabel } from './messaging.metrics.js';
import { encodeErrorReply } from './rpc-codec.js';
import { RpcContext } from './rpc-context.js';
import { RPC_DESCRIPTOR } from './rpc-handler.decorator.js';

export interface NatsRpcServerOptions {
  connection: NatsConnection;
  /** Queue group: replicas of one service share the load, each message goes to one. */
  queue: string;
  logger: Logger;
  /**
   * This process's shard, for sharded contracts (descriptors with `shardSubject`): it
   * subscribes `shardSubject(shard)` (queue `<queue>.shard.<n>`) instead of the template.
   * A sharded handler in a process without a shard is a configuration bug: listen throws.
   */
  shard?: number;
  /** Decides whether a request's deadline has passed. */
  clock?: Clock;
  /** Where request counts and durations go; default: the metrics bound to `connection` (bindMessagingMetrics). */
  metrics?: MessagingMetrics;
}

/**
 * Nest transport strategy for our request/reply contracts.
 *
 * Why not Nest's built-in NATS transport: it wraps every payload in a JSON envelope
 * ({pattern, data, id}) and replaces unknown errors with a generic object, so it can carry
 * neither protobuf bodies nor typed error replies, and it validates nothing. This strategy
 * keeps Nest's handler model (@RpcHandler + @Payload()/@Ctx(), guards, interceptors, DI)
 * and owns the wire: protobuf in, validation before the handler, protobuf or ErrorReply out,
 * trace context and deadlines from headers, drain on shutdown.
 */
export class NatsRpcServer extends Server implements CustomTransportStrategy {
  private readonly subscriptions: Subscription[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly clock: Clock;

  constructor(private readonly options: NatsRpcServerOptions) {
    super();
    this.clock = options.clock ?? systemClock;
  }

  listen(callback: (...optionalParams: unknown[]) => void): void {
    for (const [pattern, handler] of this.messageHandlers) {
      const descriptor = handler.extras?.[RPC_DESCRIPTOR] as RpcDescriptor | undefined;
      if (!descriptor) {
        // Every handler must name a catalog contract; a bare string pattern is a bug.
        throw new Error(`Handler for "${pattern}" is not bound to a catalog descriptor (use @RpcHandler)`);
      }
      const { subject, queue } = this.subscriptionFor(descriptor);
      const sub = this.options.connection.subscribe(subject, {
        queue,
        callback: (error, msg) => {
          if (error) {
            this.options.logger.error({ err: error.message, subject: descriptor.subject }, 'subscription error');
            return;
          }
          const work = this.handle(descriptor, handler, msg).finally(() => this.inFlight.delete(work));
          this.inFlight.add(work);
        },
      });
      this.subscriptions.push(sub);
      this.options.logger.debug({ subject, queue }, 'rpc subscribed');
    }
    callback();
  }

  /** Where a handler listens: the descriptor's subject, or for a sharded one this shard's. */
  subscriptionFor(descriptor: RpcDescriptor): { subject: string; queue: string } {
    if (!descriptor.shardSubject) return { subject: descriptor.subject, queue: this.options.queue };
    const { shard } = this.options;
    if (shard === undefined)
      throw new Error(`Handler for sharded "${descriptor.subject}" needs the server's shard option`);
    return { subject: descriptor.shardSubject(shard), queue: `${this.options.queue}.shard.${shard}` };
  }

  /** Stops taking messages, lets delivered ones finish, then returns. The connection is drained by its owner. */
  async close(): Promise<void> {
    await Promise.allSettled(this.subscriptions.map((s) => s.drain()));
    await Promise.allSettled([...this.inFlight]);
  }

  on(): never {
    throw new Error('NatsRpcServer does not emit events');
  }

  unwrap<T>(): T {
    return this.options.connection as T;
  }

  private async handle(descriptor: RpcDescriptor, handler: MessageHandler, msg: Msg): Promise<void> {
    const started = performance.now();
    const requestId = msg.headers?.get(Header.requestId) || randomUUID();
    const deadlineHeader = Number(msg.headers?.get(Header.deadline));
    const deadline = Number.isFinite(deadlineHeader) && deadlineHeader > 0 ? deadlineHeader : Number.POSITIVE_INFINITY;
    const parent = extractTraceContext((key) => msg.headers?.get(key) || undefined);
    const log = this.options.logger;

    await runWithRequestContext({ requestId }, () =>
      withSpan(
        `rpc ${descriptor.subject}`,
        {
          kind: SpanKind.SERVER,
          parent,
          attributes: { 'messaging.system': 'nats', 'messaging.destination.name': msg.subject },
        },
        async () => {
          let outcome = 'ok';
          try {
            if (!msg.reply) {
              // A request without a reply subject cannot be answered; say so in the log, not silently.
              throw new AppError('malformed_request', 'Request/reply subject used without a reply inbox');
            }
            if (this.clock.now() > deadline)
              throw new AppError('deadline_exceeded', 'The deadline passed before the request was handled');
            const request = decodeRequest(descriptor, msg.data);
            const problems = descriptor.validate?.(request as never) ?? [];
            if (problems.length > 0) {
              throw new AppError('validation_failed', `${descriptor.request.typeName} failed validation`, problems);
            }
            const context = new RpcContext(msg.subject, msg.headers, requestId, deadline, this.clock);
            // Nest's handler resolves to the method's value, or to an Observable when an
            // interceptor or the exception filter stepped in; only the latter needs rxjs
            // (subscribing per request was ~2 % of a shard's CPU under `pnpm bench:query`).
            const returned: unknown = await handler(request, context);
            const result: unknown = isObservable(returned) ? await lastValueFrom(returned) : returned;
            this.reply(msg, ReplyStatus.ok, wireBytes(descriptor.response, result, EncodedReply, descriptor.subject));
          } catch (thrown) {
            const error = AppError.from(thrown);
            outcome = error.code;
            const level = error.status >= 500 ? 'error' : 'warn';
            // The cause goes to our log (scrubbed by the logger); the caller only gets code + message.
            log[level](
              { subject: msg.subject, errorCode: error.code, problems: error.problems, err: error.cause ?? error },
              'rpc failed',
            );
            if (msg.reply) this.reply(msg, ReplyStatus.error, encodeErrorReply(error));
          } finally {
            const ms = performance.now() - started;
            const metrics = this.options.metrics ?? messagingMetricsFor(this.options.connection);
            if (metrics) {
              const subject = subjectLabel(descriptor);
              metrics.rpcServerRequests.inc({ subject, outcome });
              metrics.rpcServerDuration.observe({ subject }, ms / 1000);
            }
            log.debug({ subject: msg.subject, outcome, ms: Math.round(ms * 100) / 100 }, 'rpc handled');
          }
        },
      ),
    );
  }

  private reply(msg: Msg, status: string, body: Uint8Array): void {
    const h = natsHeaders();
    h.set(Header.status, status);
    try {
      msg.respond(body, { headers: h });
    } catch (error) {
      this.options.logger.warn({ subject: msg.subject, err: (error as Error).message }, 'could not send reply');
    }
  }
}

function decodeRequest(descriptor: RpcDescriptor, data: Uint8Array): unknown {
  try {
    return fromBinary(descriptor.request, data);
  } catch {
    throw new AppError('malformed_request', `The message is not a valid ${descriptor.request.typeName}`);
  }
}
