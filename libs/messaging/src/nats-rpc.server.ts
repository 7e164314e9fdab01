import { randomUUID } from 'node:crypto';

import { fromBinary } from '@bufbuild/protobuf';
import { type Clock, systemClock } from '@context-gateway/clock';
import { AppError } from '@context-gateway/errors';
import { extractTraceContext, runWithRequestContext, tracer } from '@context-gateway/observability';
import type { RpcDescriptor } from '@context-gateway/proto';
import type { Msg, MsgHdrs, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { CustomTransportStrategy, MessageHandler } from '@nestjs/microservices';
import { Server } from '@nestjs/microservices';
import { type Span, SpanKind, type SpanOptions } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { isObservable, lastValueFrom } from 'rxjs';

import { EncodedReply, wireBytes } from './encoded-reply.js';
import { Header, replyHeaders } from './headers.js';
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
 * What the server works out once per subscribed contract, at listen, rather than per message:
 * the span's name and options and the subject's metric label are the same for every message
 * of one subscription (it has one concrete subject, never a wildcard).
 */
interface Route {
  readonly descriptor: RpcDescriptor;
  readonly handler: MessageHandler;
  readonly spanName: string;
  readonly spanOptions: SpanOptions;
  /** subjectLabel(descriptor): a regex replace per message for sharded subjects otherwise. */
  readonly subjectLabel: string;
  /** The request's decoder: the contract's hand codec (decodeRequest) when it has one, else fromBinary. */
  readonly decode: (this: void, bytes: Uint8Array) => unknown;
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
  /** Messages taken and not yet answered, and who waits for there to be none (close). */
  private inFlight = 0;
  private readonly idle: (() => void)[] = [];
  private readonly clock: Clock;
  /** Kept once found: the runtime binds the connection's metrics before it starts the server. */
  private metrics: MessagingMetrics | undefined;

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
      const route: Route = {
        descriptor,
        handler,
        spanName: `rpc ${descriptor.subject}`,
        // Shared by every span of the route: the SDK copies attributes into each span it records.
        spanOptions: {
          kind: SpanKind.SERVER,
          attributes: Object.freeze({ 'messaging.system': 'nats', 'messaging.destination.name': subject }),
        },
        subjectLabel: subjectLabel(descriptor),
        decode: descriptor.decodeRequest ?? ((bytes) => fromBinary(descriptor.request, bytes)),
      };
      const sub = this.options.connection.subscribe(subject, {
        queue,
        callback: (error, msg) => {
          if (error) {
            this.options.logger.error({ err: error.message, subject: descriptor.subject }, 'subscription error');
            return;
          }
          this.handle(route, msg);
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
    if (this.inFlight > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  on(): never {
    throw new Error('NatsRpcServer does not emit events');
  }

  unwrap<T>(): T {
    return this.options.connection as T;
  }

  /**
   * Starts answering `msg`: inside its request context and a server span (child of the
   * caller's, from the trace headers), the work itself in `serve`. Not async, and no promise
   * kept per message: counting in-flight messages is all close() needs, and each async layer
   * and `.finally` costs promises, which on Node 20 every enabled AsyncLocalStorage taxes.
   */
  private handle(route: Route, msg: Msg): void {
    this.inFlight += 1;
    const started = performance.now();
    // Set once serve runs: from then on it answers, counts and settles the message itself.
    let serving = false;
    try {
      const headers = headersOf(msg);
      const requestId = headers?.get(Header.requestId) || randomUUID();
      const parent = extractTraceContext((key) => headers?.get(key) || undefined);
      void runWithRequestContext({ requestId }, () =>
        tracer().startActiveSpan(route.spanName, route.spanOptions, parent, (span) => {
          serving = true;
          return this.serve(route, msg, requestId, deadlineOf(headers), started, span);
        }),
      );
    } catch (thrown) {
      // Headers nats.js cannot decode (malformed_request), or a broken tracer (internal).
      // A tracer that throws after calling back leaves the message to serve: not twice.
      if (serving) {
        this.options.logger.error({ subject: msg.subject, err: thrown }, 'rpc tracer failed after serving');
        return;
      }
      const outcome = this.refuse(msg, thrown);
      this.settled();
      this.record(route, msg, outcome, started);
    }
  }

  private async serve(
    route: Route,
    msg: Msg,
    requestId: string,
    deadline: number,
    started: number,
    span: Span,
  ): Promise<void> {
    const { descriptor, handler } = route;
    let outcome = 'ok';
    try {
      if (!msg.reply) {
        // A request without a reply subject cannot be answered; say so in the log, not silently.
        throw new AppError('malformed_request', 'Request/reply subject used without a reply inbox');
      }
      if (this.clock.now() > deadline)
        throw new AppError('deadline_exceeded', 'The deadline passed before the request was handled');
      const request = decodeRequest(route, msg.data);
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
      this.reply(msg, replyHeaders.ok, wireBytes(descriptor.response, result, EncodedReply, descriptor.subject));
    } catch (thrown) {
      outcome = this.refuse(msg, thrown);
    } finally {
      // First: nothing after it may keep close() waiting for a message already answered.
      this.settled();
      span.end();
      this.record(route, msg, outcome, started);
    }
  }

  /**
   * Logs why `msg` failed and sends the caller its error reply; returns the outcome to count.
   * Never throws: nobody awaits serve's promise, so a throw here would be an unhandled rejection.
   */
  private refuse(msg: Msg, thrown: unknown): string {
    let code = 'internal';
    try {
      const error = AppError.from(thrown);
      code = error.code;
      const level = error.status >= 500 ? 'error' : 'warn';
      // The cause goes to our log (scrubbed by the logger); the caller only gets code + message.
      this.options.logger[level](
        { subject: msg.subject, errorCode: error.code, problems: error.problems, err: error.cause ?? error },
        'rpc failed',
      );
      if (msg.reply) this.reply(msg, replyHeaders.error, encodeErrorReply(error));
    } catch (error) {
      this.options.logger.error({ subject: msg.subject, err: error }, 'rpc error reply failed');
    }
    return code;
  }

  /** Counts and times one answered message. Never throws, for the same reason as refuse. */
  private record(route: Route, msg: Msg, outcome: string, started: number): void {
    try {
      const ms = performance.now() - started;
      const metrics = (this.metrics ??= this.options.metrics ?? messagingMetricsFor(this.options.connection));
      if (metrics) {
        metrics.rpcServerRequests.inc({ subject: route.subjectLabel, outcome });
        metrics.rpcServerDuration.observe({ subject: route.subjectLabel }, ms / 1000);
      }
      // Guarded: the line's object would be built for every message even with debug off.
      const log = this.options.logger;
      if (log.isLevelEnabled('debug'))
        log.debug({ subject: msg.subject, outcome, ms: Math.round(ms * 100) / 100 }, 'rpc handled');
    } catch (error) {
      this.options.logger.error({ subject: msg.subject, err: error }, 'rpc not recorded');
    }
  }

  private settled(): void {
    this.inFlight -= 1;
    if (this.inFlight === 0) for (const resolve of this.idle.splice(0)) resolve();
  }

  private reply(msg: Msg, headers: MsgHdrs, body: Uint8Array): void {
    try {
      msg.respond(body, { headers });
    } catch (error) {
      this.options.logger.warn({ subject: msg.subject, err: (error as Error).message }, 'could not send reply');
    }
  }
}

/** The caller's absolute deadline (epoch ms) from its header; Infinity when none or not a time. */
function deadlineOf(headers: MsgHdrs | undefined): number {
  const deadline = Number(headers?.get(Header.deadline));
  return Number.isFinite(deadline) && deadline > 0 ? deadline : Number.POSITIVE_INFINITY;
}

/**
 * The message's headers, or malformed_request: nats.js decodes them on first read and throws on
 * what it cannot (a header name with a space, sent by a client that does not check).
 */
function headersOf(msg: Msg): MsgHdrs | undefined {
  try {
    return msg.headers;
  } catch (error) {
    throw new AppError('malformed_request', 'The message headers cannot be read', [], { cause: error });
  }
}

function decodeRequest(route: Route, data: Uint8Array): unknown {
  try {
    return route.decode(data);
  } catch {
    throw new AppError('malformed_request', `The message is not a valid ${route.descriptor.request.typeName}`);
  }
}
