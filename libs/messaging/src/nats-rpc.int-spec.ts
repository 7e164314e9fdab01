import 'reflect-metadata';

import { randomUUID } from 'node:crypto';

import { create, type DescMessage, toBinary } from '@bufbuild/protobuf';
import { fromBinary } from '@bufbuild/protobuf';
import { AppError } from '@context-gateway/errors';
import { createLogger } from '@context-gateway/observability';
import {
  check,
  defineRpc,
  ErrorReplySchema,
  GetReadinessResponseSchema,
  type RpcDescriptor,
  type SyncJob,
  SyncJobSchema,
  SyncReason,
} from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { Controller, type INestMicroservice, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, Payload } from '@nestjs/microservices';

import { EncodedReply, EncodedRequest } from './encoded-reply.js';
import { Header } from './headers.js';
import { NatsRpcServer } from './nats-rpc.server.js';
import { RpcClient } from './rpc-client.js';
import { RpcContext } from './rpc-context.js';
import { RpcErrorPassthroughFilter } from './rpc-exception.filter.js';
import { RpcHandler } from './rpc-handler.decorator.js';

// Real NATS on the machine; subjects are unique to this file so parallel runs never meet.
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const prefix = `test${randomUUID().slice(0, 8)}`;
const echo = defineRpc({
  callers: ['gateway'],
  subject: `${prefix}.v1.echo`,
  request: SyncJobSchema,
  response: GetReadinessResponseSchema,
  validate: (job) => [...check.uuid(job.connectionId, 'connectionId')],
});
const slow = defineRpc({
  callers: ['gateway'],
  subject: `${prefix}.v1.slow`,
  request: SyncJobSchema,
  response: GetReadinessResponseSchema,
  timeoutMs: 200,
});
const encoded = defineRpc({
  callers: ['gateway'],
  subject: `${prefix}.v1.encoded`,
  request: SyncJobSchema,
  response: GetReadinessResponseSchema,
});
/** How often `decoded`'s hand decoder ran: the server must use it, not fromBinary. */
let handDecoded = 0;
const decoded = defineRpc({
  callers: ['gateway'],
  subject: `${prefix}.v1.decoded`,
  request: SyncJobSchema,
  response: GetReadinessResponseSchema,
  validate: (job) => [...check.uuid(job.connectionId, 'connectionId')],
  decodeRequest(bytes) {
    handDecoded += 1;
    return fromBinary(SyncJobSchema, bytes);
  },
});
/** A hand decoder that refuses everything, as one does a known field with the wrong wire type. */
const refused = defineRpc({
  callers: ['gateway'],
  subject: `${prefix}.v1.refused`,
  request: SyncJobSchema,
  response: GetReadinessResponseSchema,
  decodeRequest() {
    throw new Error('field 2 has wire type Varint, expected LengthDelimited');
  },
});
const nobody = defineRpc({
  callers: ['gateway'],
  subject: `${prefix}.v1.nobody`,
  request: SyncJobSchema,
  response: GetReadinessResponseSchema,
});

/** What a second loaded copy of encoded-reply.ts (another bundle) constructs: its own class, the same brand. */
const brand = Symbol.for('@context-gateway/messaging.EncodedReply');
class EncodedReplyOfAnotherCopy {
  readonly [brand] = true;
  constructor(
    readonly schema: DescMessage,
    readonly bytes: Uint8Array,
  ) {}
}

let handled = 0;
@Controller()
class EchoHandler {
  @RpcHandler(echo)
  echo(@Payload() job: SyncJob, @Ctx() ctx: RpcContext) {
    handled += 1;
    if (job.jobId === 'conflict') throw new AppError('conflict', 'already there');
    if (job.jobId === 'crash') throw new Error('db password=hunter2 leaked in a driver message');
    return { service: job.connectionId, ready: true, instance: ctx.requestId };
  }

  /**
   * Bytes the handler wrote itself; jobId 'other' claims another message's schema, 'sliced'
   * sends them as a view into a larger buffer (as Buffer.allocUnsafe and Buffer.from hand
   * out small buffers from their shared pool), 'copy' as another loaded copy of
   * encoded-reply.ts would make them.
   */
  @RpcHandler(encoded)
  encoded(@Payload() job: SyncJob) {
    const reply = toBinary(GetReadinessResponseSchema, create(GetReadinessResponseSchema, { service: job.jobId }));
    if (job.jobId === 'sliced') {
      // 0xff on either side: a varint that never ends, so sent along they would not decode.
      const pool = Buffer.alloc(reply.length + 32, 0xff);
      pool.set(reply, 16);
      return new EncodedReply(GetReadinessResponseSchema, pool.subarray(16, 16 + reply.length));
    }
    // That copy's proto package too: another descriptor object of the same message.
    if (job.jobId === 'copy') return new EncodedReplyOfAnotherCopy({ ...GetReadinessResponseSchema }, reply);
    return new EncodedReply(job.jobId === 'other' ? SyncJobSchema : GetReadinessResponseSchema, reply);
  }

  @RpcHandler(decoded)
  decoded(@Payload() job: SyncJob) {
    handled += 1;
    return { service: job.connectionId };
  }

  @RpcHandler(refused)
  refused() {
    handled += 1;
    return { service: 'should not run' };
  }

  @RpcHandler(slow)
  async slow() {
    await new Promise((r) => setTimeout(r, 600));
    return { service: 'slow' };
  }
}

@Module({ controllers: [EchoHandler] })
class EchoModule {}

let app: INestMicroservice;
let nc: NatsConnection;
let client: RpcClient;
const logger = createLogger({ service: 'messaging-test', level: process.env.TEST_LOG_LEVEL ?? 'silent' });

beforeAll(async () => {
  nc = await connect({ servers: NATS_URL });
  app = await NestFactory.createMicroservice(EchoModule, {
    strategy: new NatsRpcServer({ connection: nc, queue: prefix, logger }),
    logger: false,
  });
  app.useGlobalFilters(new RpcErrorPassthroughFilter());
  await app.listen();
  client = new RpcClient(nc);
});

afterAll(async () => {
  await app.close();
  await nc.drain();
});

async function raw(subject: string, body: Uint8Array) {
  const reply = await nc.request(subject, body, { timeout: 2_000 });
  return { status: reply.headers?.get(Header.status), body: reply.data };
}

describe('typed request/reply over NATS', () => {
  const connectionId = randomUUID();

  it('round-trips a typed request and reply', async () => {
    const reply = await client.request(echo, { jobId: 'a', connectionId, reason: SyncReason.MANUAL });
    expect(reply.service).toBe(connectionId);
    expect(reply.ready).toBe(true);
  });

  it('sends the bytes a handler encoded itself, and refuses ones of another schema', async () => {
    const reply = await client.request(encoded, { jobId: 'pre-encoded', connectionId });
    expect(reply.service).toBe('pre-encoded');
    // Only the view's bytes go out, not the buffer around them.
    expect((await client.request(encoded, { jobId: 'sliced', connectionId })).service).toBe('sliced');
    // Not `instanceof` this copy's class, still not re-encoded as an empty message.
    expect((await client.request(encoded, { jobId: 'copy', connectionId })).service).toBe('copy');
    await expect(client.request(encoded, { jobId: 'other', connectionId })).rejects.toMatchObject({ code: 'internal' });
  });

  it('sends the bytes a caller encoded itself, and refuses ones of another schema unsent', async () => {
    const job = create(SyncJobSchema, { jobId: 'by-hand', connectionId, reason: SyncReason.MANUAL });
    const bytes = toBinary(SyncJobSchema, job);
    // A view into a larger buffer (0xff around it would not decode): only the view goes out.
    const pool = Buffer.alloc(bytes.length + 32, 0xff);
    pool.set(bytes, 16);
    const sent = new EncodedRequest(SyncJobSchema, pool.subarray(16, 16 + bytes.length));
    const before = handled;
    const reply = await client.request(echo, sent);
    expect(reply.service).toBe(connectionId);
    expect(handled).toBe(before + 1);
    // Checked by the server as any request is: an invalid message is still refused.
    const invalid = toBinary(SyncJobSchema, create(SyncJobSchema, { jobId: 'x', connectionId: 'not-a-uuid' }));
    await expect(client.request(echo, new EncodedRequest(SyncJobSchema, invalid))).rejects.toMatchObject({
      code: 'validation_failed',
    });
    const other = new EncodedRequest(
      GetReadinessResponseSchema,
      toBinary(GetReadinessResponseSchema, create(GetReadinessResponseSchema, { service: connectionId })),
    );
    const count = handled;
    await expect(client.request(echo, other)).rejects.toMatchObject({ code: 'internal' });
    expect(handled).toBe(count);
  });

  it("uses a contract's hand codecs for the request and the reply, the caller's own bytes as they are", async () => {
    const calls = { encode: 0, decode: 0 };
    // echo's contract with hand codecs (here the generic ones, counted); its server decodes as before.
    const coded: RpcDescriptor<typeof SyncJobSchema, typeof GetReadinessResponseSchema> = {
      ...echo,
      encodeRequest(message) {
        calls.encode += 1;
        return toBinary(SyncJobSchema, create(SyncJobSchema, message));
      },
      decodeResponse(bytes) {
        calls.decode += 1;
        return fromBinary(GetReadinessResponseSchema, bytes);
      },
    };
    expect((await client.request(coded, { jobId: 'a', connectionId })).service).toBe(connectionId);
    expect(calls).toEqual({ encode: 1, decode: 1 });
    const own = new EncodedRequest(SyncJobSchema, toBinary(SyncJobSchema, create(SyncJobSchema, { connectionId })));
    expect((await client.request(coded, own)).service).toBe(connectionId);
    expect(calls).toEqual({ encode: 1, decode: 2 });
    // A reply the hand decoder refuses is the caller's `internal`, as one fromBinary refuses.
    const refusing: typeof coded = {
      ...coded,
      decodeResponse() {
        throw new Error('field 1 has wire type Varint, expected LengthDelimited');
      },
    };
    await expect(client.request(refusing, { jobId: 'a', connectionId })).rejects.toMatchObject({ code: 'internal' });
  });

  it("decodes a request with its contract's hand decoder, validates it, and refuses what that decoder refuses", async () => {
    const before = { decodes: handDecoded, handled };
    const body = toBinary(SyncJobSchema, create(SyncJobSchema, { jobId: 'hand', connectionId }));
    const reply = await raw(decoded.subject, body);
    expect(reply.status).toBe('ok');
    expect(fromBinary(GetReadinessResponseSchema, reply.body).service).toBe(connectionId);
    expect(handDecoded).toBe(before.decodes + 1);
    // What it decodes is still validated before the handler.
    const invalid = toBinary(SyncJobSchema, create(SyncJobSchema, { connectionId: 'not-a-uuid' }));
    expect(fromBinary(ErrorReplySchema, (await raw(decoded.subject, invalid)).body).code).toBe('validation_failed');
    expect(handDecoded).toBe(before.decodes + 2);
    expect(handled).toBe(before.handled + 1);
    // A request the hand decoder throws on is malformed_request, and never reaches the handler.
    const refusal = await raw(refused.subject, body);
    expect(refusal.status).toBe('error');
    expect(fromBinary(ErrorReplySchema, refusal.body)).toMatchObject({
      code: 'malformed_request',
      message: `The message is not a valid ${SyncJobSchema.typeName}`,
    });
    expect(handled).toBe(before.handled + 1);
  });

  it('carries the AppError code of the handler back to the caller', async () => {
    await expect(client.request(echo, { jobId: 'conflict', connectionId })).rejects.toMatchObject({
      code: 'conflict',
      message: 'already there',
    });
  });

  it('hides an unexpected error behind internal, without its message', async () => {
    const error = (await client.request(echo, { jobId: 'crash', connectionId }).catch((e: unknown) => e)) as AppError;
    expect(error.code).toBe('internal');
    expect(error.message).not.toContain('hunter2');
  });

  it('answers a message that is not protobuf with a typed malformed_request reply and stays up', async () => {
    const before = handled;
    const reply = await raw(echo.subject, new TextEncoder().encode('{"connectionId": "x"}'));
    expect(reply.status).toBe('error');
    expect(fromBinary(ErrorReplySchema, reply.body).code).toBe('malformed_request');
    expect(handled).toBe(before);
    // still serving
    await expect(client.request(echo, { jobId: 'b', connectionId })).resolves.toMatchObject({ service: connectionId });
  });

  it('rejects a decodable but invalid message with validation_failed and the field', async () => {
    const body = toBinary(SyncJobSchema, create(SyncJobSchema, { jobId: 'x', connectionId: 'not-a-uuid' }));
    const reply = await raw(echo.subject, body);
    const error = fromBinary(ErrorReplySchema, reply.body);
    expect(error.code).toBe('validation_failed');
    expect(error.problems.map((p) => p.path)).toEqual(['connectionId']);
  });

  it('refuses work whose deadline has already passed', async () => {
    const h = headers();
    h.set(Header.deadline, String(Date.now() - 1));
    const body = toBinary(SyncJobSchema, create(SyncJobSchema, { connectionId }));
    const reply = await nc.request(echo.subject, body, { timeout: 2_000, headers: h });
    expect(fromBinary(ErrorReplySchema, reply.data).code).toBe('deadline_exceeded');
  });

  it('turns no responders into service_unavailable and a late reply into deadline_exceeded', async () => {
    await expect(client.request(nobody, {})).rejects.toMatchObject({ code: 'service_unavailable' });
    await expect(client.request(slow, {})).rejects.toMatchObject({ code: 'deadline_exceeded' });
  });

  it('passes the request id to the handler through headers', async () => {
    const h = headers();
    h.set(Header.requestId, 'req-123');
    const body = toBinary(SyncJobSchema, create(SyncJobSchema, { connectionId }));
    const reply = await nc.request(echo.subject, body, { timeout: 2_000, headers: h });
    expect(fromBinary(GetReadinessResponseSchema, reply.data).instance).toBe('req-123');
  });
});
