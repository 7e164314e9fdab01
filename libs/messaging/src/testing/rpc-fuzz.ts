import { create, type DescField, type DescMessage, fromBinary, ScalarType, toBinary } from '@bufbuild/protobuf';
import { ErrorCodes } from '@context-gateway/errors';
import {
  ErrorReplySchema,
  type GetReadinessRequestSchema,
  GetReadinessResponseSchema,
  type RpcDescriptor,
} from '@context-gateway/proto';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import fc from 'fast-check';

import { Header, ReplyStatus } from '../headers.js';

/**
 * Fuzzing of one request/reply subject (docs/fuzzing.md): well-formed messages with random
 * field values, the same encodings mutated, and random bytes. Every reply must come in time
 * and be either a response that decodes or a typed error that is not `internal`; a rejected
 * request must leave the service's tables as they were. fast-check prints the seed and the
 * shrunk payload of a failure, so `FUZZ_SEED=<seed>` replays it.
 */

/** Cases per subject: FUZZ_RUNS (the longer `pnpm test:fuzz` raises it). */
export const fuzzRuns = (fallback: number): number => Number(process.env.FUZZ_RUNS ?? fallback);

/** fast-check parameters shared by every fuzzer: the run count, and the seed to replay. */
export function fuzzParameters(runs: number): { numRuns: number; seed?: number; endOnFailure: boolean } {
  const seed = process.env.FUZZ_SEED;
  // endOnFailure: shrinking against a live service costs minutes; the first counterexample is enough.
  return { numRuns: runs, ...(seed ? { seed: Number(seed) } : {}), endOnFailure: true };
}

// Values a handler recognises (ids, integrations, scopes) next to hostile ones, so some
// messages pass validation and reach the database.
const hostileString = fc.oneof(
  fc.constantFrom('', ' ', '\u0000', 'a\u0000b', '\ud800', 'x'.repeat(70_000), '../../etc', '%00', '🦀'),
  fc.string({ unit: 'binary', maxLength: 40 }),
);
const plausibleString = fc.oneof(
  fc.uuid({ version: 4 }),
  fc.constantFrom('github', 'spotify', 'netflix', 'github:read:repos', 'https://app.example/cb', 'ALLOW', 'test'),
  fc.string({ maxLength: 24 }),
);
/** Strings for one run: `known` are ids of rows the test created, so requests can find them. */
function stringsWith(known: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: known.length > 0 ? 3 : 0, arbitrary: fc.constantFrom(...(known.length > 0 ? known : [''])) },
    { weight: 3, arbitrary: plausibleString },
    { weight: 1, arbitrary: hostileString },
  );
}

const int32 = fc.oneof(fc.integer({ min: -5, max: 100 }), fc.constantFrom(-(2 ** 31), 2 ** 31 - 1, 0));
const uint32 = fc.oneof(fc.integer({ min: 0, max: 100 }), fc.constant(2 ** 32 - 1));
const int64 = fc.oneof(
  fc.bigInt({ min: -5n, max: 2_000_000_000n }),
  fc.constantFrom(-(2n ** 63n), 2n ** 63n - 1n, 1_700_000_000n),
);
const uint64 = fc.oneof(fc.bigInt({ min: 0n, max: 2_000_000_000n }), fc.constant(2n ** 64n - 1n));
const double = fc.oneof(fc.double(), fc.constantFrom(0, -0, Number.NaN, Infinity, 1e308));

function scalar(type: ScalarType, str: fc.Arbitrary<string>): fc.Arbitrary<unknown> {
  switch (type) {
    case ScalarType.STRING:
      return str;
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 64 });
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return double;
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return int32;
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return uint32;
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return int64;
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return uint64;
  }
}

function fieldValue(field: DescField, str: fc.Arbitrary<string>, depth: number): fc.Arbitrary<unknown> | undefined {
  switch (field.fieldKind) {
    case 'scalar':
      return scalar(field.scalar, str);
    case 'enum':
      // Declared values mostly, an undeclared number sometimes (proto3 enums are open).
      return fc.oneof(fc.constantFrom(...field.enum.values.map((v) => v.number)), fc.integer({ min: -1, max: 99 }));
    case 'message':
      return depth > 3 ? undefined : messageInit(field.message, str, depth + 1);
    case 'list': {
      const item =
        field.listKind === 'scalar'
          ? scalar(field.scalar, str)
          : field.listKind === 'enum'
            ? fc.integer({ min: 0, max: field.enum.values.length })
            : depth > 3
              ? undefined
              : messageInit(field.message, str, depth + 1);
      return item && fc.array(item, { maxLength: 4 });
    }
    case 'map': {
      const value =
        field.mapKind === 'scalar'
          ? scalar(field.scalar, str)
          : field.mapKind === 'enum'
            ? fc.integer({ min: 0, max: 3 })
            : depth > 3
              ? undefined
              : messageInit(field.message, str, depth + 1);
      const key = field.mapKey === ScalarType.STRING ? str : fc.integer({ min: 0, max: 9 }).map(String);
      return value && fc.dictionary(key, value, { maxKeys: 3 });
    }
  }
}

/** An init object for `desc` with each field set or left out at random (a oneof gets one case). */
function messageInit(desc: DescMessage, str: fc.Arbitrary<string>, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  for (const field of desc.fields) {
    if (field.oneof) continue;
    const arb = fieldValue(field, str, depth);
    if (arb) parts[field.localName] = arb;
  }
  for (const oneof of desc.oneofs) {
    const cases = oneof.fields.flatMap((field) => {
      const arb = fieldValue(field, str, depth);
      return arb ? [arb.map((value) => ({ case: field.localName, value }))] : [];
    });
    if (cases.length > 0) parts[oneof.localName] = fc.oneof(...cases);
  }
  return fc.record(parts, { requiredKeys: [] });
}

/** Valid protobuf of the subject's request type, with random field values. */
function validPayload(desc: DescMessage, str: fc.Arbitrary<string>): fc.Arbitrary<Uint8Array> {
  return messageInit(desc, str).map((init) => toBinary(desc, create(desc, init)));
}

/** A valid encoding damaged the way a broken or hostile peer damages bytes. */
function mutatedPayload(desc: DescMessage, str: fc.Arbitrary<string>): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(validPayload(desc, str), fc.nat(), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 16 }))
    .chain(([bytes, at, byte, junk]) => {
      const i = bytes.length === 0 ? 0 : at % bytes.length;
      return fc.constantFrom(
        // one byte replaced
        Uint8Array.from(bytes, (b, j) => (j === i ? byte : b)),
        // truncated mid-field
        bytes.slice(0, i),
        // junk inserted (unknown fields, broken varints, wrong wire types)
        Uint8Array.from([...bytes.slice(0, i), ...junk, ...bytes.slice(i)]),
        // a length prefix claiming more than there is
        Uint8Array.from([...bytes, 0x0a, 0xff, 0xff, 0xff, 0x0f]),
        // an unterminated varint
        Uint8Array.from([...bytes, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
      );
    });
}

/** Every kind of payload the fuzzer sends, labelled for the failure report. */
function payloads(desc: DescMessage, known: readonly string[]): fc.Arbitrary<{ kind: string; bytes: Uint8Array }> {
  const str = stringsWith(known);
  return fc.oneof(
    { weight: 2, arbitrary: validPayload(desc, str).map((bytes) => ({ kind: 'valid', bytes })) },
    mutatedPayload(desc, str).map((bytes) => ({ kind: 'mutated', bytes })),
    fc.uint8Array({ maxLength: 256 }).map((bytes) => ({ kind: 'random', bytes })),
  );
}

interface Reply {
  status: string | undefined;
  data: Uint8Array;
}

async function ask(nc: NatsConnection, subject: string, bytes: Uint8Array, timeoutMs: number): Promise<Reply> {
  const h = natsHeaders();
  h.set(Header.deadline, String(Date.now() + timeoutMs));
  const msg = await nc.request(subject, bytes, { timeout: timeoutMs, headers: h }).catch((error: unknown) => {
    throw new Error(`${subject}: no reply within ${timeoutMs} ms (${String(error)})`);
  });
  return { status: msg.headers?.get(Header.status), data: msg.data };
}

/** Throws unless the reply is a decodable response or a typed, non-internal error. */
function checkReply(descriptor: RpcDescriptor, reply: Reply): { ok: boolean; code?: string } {
  if (reply.status === ReplyStatus.ok) {
    fromBinary(descriptor.response, reply.data);
    return { ok: true };
  }
  if (reply.status !== ReplyStatus.error) throw new Error(`${descriptor.subject}: reply without cg-status`);
  const error = fromBinary(ErrorReplySchema, reply.data);
  if (!(error.code in ErrorCodes)) throw new Error(`${descriptor.subject}: unknown error code "${error.code}"`);
  if (error.code === 'internal') throw new Error(`${descriptor.subject}: internal error: ${error.message}`);
  return { ok: false, code: error.code };
}

export interface RpcFuzzOptions {
  nc: NatsConnection;
  runs: number;
  /** The service's health subject, asked after the run: the service must still answer it, ready. */
  health: RpcDescriptor<typeof GetReadinessRequestSchema, typeof GetReadinessResponseSchema>;
  /** Row counts per table; compared around every request answered with an error. */
  rowCounts?: () => Promise<Record<string, number>>;
  /** Ids of rows the test created (an organization, an application): mixed into string fields. */
  known?: readonly string[];
  /** How long a reply may take before it counts as a hang. */
  timeoutMs?: number;
}

/** What one subject's run met, for the test's own assertions and the report. */
export interface RpcFuzzSummary {
  ok: number;
  errors: Record<string, number>;
}

/** Fuzzes one subject for `runs` cases; rejects with fast-check's report on the first failure. */
export async function fuzzRpcSubject(descriptor: RpcDescriptor, options: RpcFuzzOptions): Promise<RpcFuzzSummary> {
  const { nc, rowCounts } = options;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const subject = descriptor.subject;
  const summary: RpcFuzzSummary = { ok: 0, errors: {} };
  await fc.assert(
    fc.asyncProperty(payloads(descriptor.request, options.known ?? []), async ({ bytes }) => {
      const before = rowCounts ? await rowCounts() : undefined;
      const outcome = checkReply(descriptor, await ask(nc, subject, bytes, timeoutMs));
      if (outcome.ok) summary.ok += 1;
      else if (outcome.code) summary.errors[outcome.code] = (summary.errors[outcome.code] ?? 0) + 1;
      if (!outcome.ok && before && rowCounts) {
        const after = await rowCounts();
        const grown = Object.keys(after).filter((table) => (after[table] ?? 0) > (before[table] ?? 0));
        if (grown.length > 0)
          throw new Error(`${subject}: rejected (${outcome.code}) but rows were added to ${grown.join(', ')}`);
      }
    }),
    fuzzParameters(options.runs),
  );
  const reply = await ask(nc, options.health.subject, new Uint8Array(), timeoutMs);
  const health = checkReply(options.health, reply);
  if (!health.ok) throw new Error(`${options.health.subject} answered ${health.code} after fuzzing ${subject}`);
  if (!fromBinary(GetReadinessResponseSchema, reply.data).ready) throw new Error(`not ready after fuzzing ${subject}`);
  return summary;
}
