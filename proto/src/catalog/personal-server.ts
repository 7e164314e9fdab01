import {
  decodeQueryRecordsRequest,
  decodeQueryRecordsResponse,
  encodeQueryRecordsRequest,
} from '../codecs/query-records.js';
import { GetReadinessRequestSchema, GetReadinessResponseSchema } from '../gen/contextgateway/health/v1/health_pb.js';
import {
  CheckApprovalRequestSchema,
  CheckApprovalResponseSchema,
  CheckConsentRequestSchema,
  CheckConsentResponseSchema,
  CountRecordsRequestSchema,
  CountRecordsResponseSchema,
  DeleteConnectionRequestSchema,
  DeleteConnectionResponseSchema,
  ExportRecordsRequestSchema,
  ExportRecordsResponseSchema,
  type GrantRecord,
  ListPinnedPasskeysRequestSchema,
  ListPinnedPasskeysResponseSchema,
  LocateConnectionRequestSchema,
  LocateConnectionResponseSchema,
  type PasskeyProof,
  PinPasskeyRequestSchema,
  PinPasskeyResponseSchema,
  ProvisionPersonalServerRequestSchema,
  ProvisionPersonalServerResponseSchema,
  QueryRecordsRequestSchema,
  QueryRecordsResponseSchema,
  RegisterGrantRequestSchema,
  RegisterGrantResponseSchema,
  type RevokeGrantRequest,
  RevokeGrantRequestSchema,
  RevokeGrantResponseSchema,
  UnpinPasskeyRequestSchema,
  UnpinPasskeyResponseSchema,
  type WriteRecordsRequest,
  WriteRecordsRequestSchema,
  WriteRecordsResponseSchema,
} from '../gen/contextgateway/personalserver/v1/personal_server_pb.js';
import { SUBJECT_PREFIX } from '../services.js';
import { defineRpc, defineShardRpc } from './descriptors.js';
import { check, isStorableTimestamp, type ValidationProblem } from './validation.js';

const P = `${SUBJECT_PREFIX['personal-server']}.v1`;
const prefix = SUBJECT_PREFIX['personal-server'];

/** Most records one write may carry: bounds a shard's transaction and the message size. */
export const MAX_RECORDS_PER_WRITE = 500;
/** Longest external id a record may have (the source's own id: GitHub node ids, Spotify URIs, hashes). */
const MAX_EXTERNAL_ID_LENGTH = 512;
/** Largest page a query may ask for (the public API's `limit` maximum). */
export const MAX_QUERY_LIMIT = 500;

const optionalUuid = (value: string, path: string): ValidationProblem[] =>
  value === '' ? [] : check.uuid(value, path);

/** A passkey assertion's JSON is a few hundred bytes; the bound is on work, not format. */
const MAX_ASSERTION_JSON = 16_384;

function validateProof(proof: PasskeyProof | undefined, path: string): ValidationProblem[] {
  if (!proof) return [{ path, message: 'must be set' }];
  return [
    ...check.nonEmpty(proof.nonce, `${path}.nonce`),
    ...check.maxLength(proof.nonce, 128, `${path}.nonce`),
    ...check.timestamp(proof.notAfter, `${path}.notAfter`),
    ...check.nonEmpty(proof.assertionJson, `${path}.assertionJson`),
    ...check.maxLength(proof.assertionJson, MAX_ASSERTION_JSON, `${path}.assertionJson`),
  ];
}

/** A WebAuthn credential id (base64url); 1023 bytes at most by the specification. */
const credentialId = (value: string, path: string): ValidationProblem[] => [
  ...check.nonEmpty(value, path),
  ...check.maxLength(value, 1400, path),
  ...(/^[A-Za-z0-9_-]*$/.test(value) ? [] : [{ path, message: 'must be base64url' }]),
];

function validateGrant(grant: GrantRecord | undefined): ValidationProblem[] {
  if (!grant) return [{ path: 'grant', message: 'must be set' }];
  return [
    ...check.uuid(grant.grantId, 'grant.grantId'),
    ...check.uuid(grant.orgId, 'grant.orgId'),
    ...check.uuid(grant.applicationId, 'grant.applicationId'),
    ...check.uuid(grant.userId, 'grant.userId'),
    ...check.uuid(grant.connectionId, 'grant.connectionId'),
    ...check.nonEmpty(grant.integration, 'grant.integration'),
    ...(grant.scopes.length === 0 ? [{ path: 'grant.scopes', message: 'must not be empty' }] : []),
    ...grant.scopes.flatMap((s, i) => check.maxLength(s, 200, `grant.scopes[${i}]`)),
  ];
}

function validateRevoke(m: RevokeGrantRequest): ValidationProblem[] {
  const problems = [
    ...optionalUuid(m.grantId, 'grantId'),
    ...optionalUuid(m.userId, 'userId'),
    ...optionalUuid(m.applicationId, 'applicationId'),
    ...optionalUuid(m.connectionId, 'connectionId'),
  ];
  // Either the grant by id, or "this application's grant on this connection".
  if (m.grantId === '' && (m.connectionId === '' || m.applicationId === '')) {
    problems.push({ path: 'grantId', message: 'must be set (or connectionId with applicationId)' });
  }
  return problems;
}

function validateWrite(m: WriteRecordsRequest): ValidationProblem[] {
  return [
    ...check.uuid(m.userId, 'userId'),
    ...check.uuid(m.connectionId, 'connectionId'),
    ...check.nonEmpty(m.integration, 'integration'),
    // Stored as the connection's last sync (found by personal-server's rpc-fuzz.int-spec.ts: `internal`).
    ...check.timestamp(m.syncedAt, 'syncedAt'),
    ...(m.records.length > MAX_RECORDS_PER_WRITE
      ? [{ path: 'records', message: `at most ${MAX_RECORDS_PER_WRITE} per write` }]
      : []),
    ...recordProblems(m.records),
  ];
}

/**
 * The same checks as `check.*` on each record, with the paths built only for a record that
 * fails: a write carries up to 500 records, and building three paths and arrays for each
 * one that passes was a visible cost of every write.
 */
function recordProblems(records: WriteRecordsRequest['records']): ValidationProblem[] {
  const problems: ValidationProblem[] = [];
  records.forEach((r, i) => {
    if (
      r.type.trim() !== '' &&
      r.externalId.trim() !== '' &&
      r.externalId.length <= MAX_EXTERNAL_ID_LENGTH &&
      isStorableTimestamp(r.sourceUpdatedAt)
    )
      return;
    problems.push(
      ...check.nonEmpty(r.type, `records[${i}].type`),
      ...check.nonEmpty(r.externalId, `records[${i}].externalId`),
      ...check.maxLength(r.externalId, MAX_EXTERNAL_ID_LENGTH, `records[${i}].externalId`),
      ...check.timestamp(r.sourceUpdatedAt, `records[${i}].sourceUpdatedAt`),
    );
  });
  return problems;
}

/**
 * The latest `since` a Date can hold (8.64e15 ms, 275760-09-13T00:00:00Z); Postgres'
 * timestamptz holds it too. The gateway takes any ISO time with an offset, so a `since` of
 * 9999-12-31T23:59:59.999-05:00 arrives as a time in the year 10000: it must pass.
 */
const MAX_SINCE_MS = 8_640_000_000_000_000n;

/**
 * The gateway sends only a known record type and a `sinceMs` from an ISO time; the shard
 * checks again for any other peer. `type` and `policyTypes` reach
 * SQL, where a NUL is an error; `sinceMs` becomes a Date, which past MAX_SINCE_MS is
 * invalid and was written as `NaN-NaN-…`: each came back `internal` (found by
 * shard-query-fuzz.int-spec.ts).
 */
const queryValidate = (m: {
  orgId: string;
  applicationId: string;
  connectionId: string;
  type: string;
  sinceMs: bigint;
  limit: number;
  cursor: string;
  policyTypes: string[];
}): ValidationProblem[] => [
  ...check.uuid(m.orgId, 'orgId'),
  ...check.uuid(m.applicationId, 'applicationId'),
  ...check.uuid(m.connectionId, 'connectionId'),
  ...check.storable(m.type, 'type'),
  ...(m.sinceMs > MAX_SINCE_MS ? [{ path: 'sinceMs', message: 'must be a time a Date can hold' }] : []),
  ...(m.limit < 1 || m.limit > MAX_QUERY_LIMIT ? [{ path: 'limit', message: `must be 1..${MAX_QUERY_LIMIT}` }] : []),
  ...check.maxLength(m.cursor, 200, 'cursor'),
  ...m.policyTypes.flatMap((t, i) => check.storable(t, `policyTypes[${i}]`)),
];

/**
 * personal-server's contracts. `ps.v1.<verb>` subjects are answered by any shard (all
 * shards share the directory and the grants table, and every query re-reads the grant in
 * SQL, so a write committed by any shard holds for the owner's next query);
 * `ps.v1.shard.<n>.<verb>` only by shard n: the query path, and delete_connection's
 * forward to the owner (which holds the unwrapped key in memory).
 */
export const personalServerRpc = {
  /** connection-broker, after consent: create (or find) the user's Personal Server. */
  provision: defineRpc({
    subject: `${P}.provision`,
    callers: ['connection-broker'],
    request: ProvisionPersonalServerRequestSchema,
    response: ProvisionPersonalServerResponseSchema,
    validate: (m) => check.uuid(m.userId, 'userId'),
  }),
  /** connection-broker, after consent: record an app's grant (idempotent by grant id). */
  registerGrant: defineRpc({
    subject: `${P}.register_grant`,
    callers: ['connection-broker'],
    request: RegisterGrantRequestSchema,
    response: RegisterGrantResponseSchema,
    validate: (m) => [...validateGrant(m.grant), ...validateProof(m.consent, 'consent')],
  }),
  /** connection-broker, on Allow: the person's signed consent, checked before the source's login. */
  checkConsent: defineRpc({
    subject: `${P}.check_consent`,
    callers: ['connection-broker'],
    request: CheckConsentRequestSchema,
    response: CheckConsentResponseSchema,
    // The first check of a person provisions their server and asks identity for their passkeys.
    timeoutMs: 5_000,
    validate: (m) => [
      ...check.uuid(m.userId, 'userId'),
      ...check.uuid(m.orgId, 'orgId'),
      ...check.uuid(m.applicationId, 'applicationId'),
      ...check.nonEmpty(m.integration, 'integration'),
      ...(m.scopes.length === 0 ? [{ path: 'scopes', message: 'must not be empty' }] : []),
      ...m.scopes.flatMap((s, i) => check.maxLength(s, 200, `scopes[${i}]`)),
      ...validateProof(m.consent, 'consent'),
    ],
  }),
  /** gateway (approvals): the person's passkey approval of one held MCP call, by a pinned passkey only. */
  checkApproval: defineRpc({
    subject: `${P}.check_approval`,
    callers: ['gateway'],
    request: CheckApprovalRequestSchema,
    response: CheckApprovalResponseSchema,
    // Asks identity for the person's passkeys (a passkey it no longer holds signs nothing).
    timeoutMs: 5_000,
    validate: (m) => [
      ...check.uuid(m.userId, 'userId'),
      ...check.uuid(m.orgId, 'orgId'),
      ...check.uuid(m.applicationId, 'applicationId'),
      ...check.nonEmpty(m.capability, 'capability'),
      ...check.maxLength(m.capability, 300, 'capability'),
      ...(['tools/call', 'resources/read', 'prompts/get'].includes(m.method)
        ? []
        : [{ path: 'method', message: 'must be tools/call, resources/read or prompts/get' }]),
      ...check.nonEmpty(m.name, 'name'),
      ...check.maxLength(m.name, 2048, 'name'),
      ...check.nonEmpty(m.callHash, 'callHash'),
      ...check.maxLength(m.callHash, 64, 'callHash'),
      ...validateProof(m.approval, 'approval'),
    ],
  }),
  /** gateway (the portal), after the person added a passkey: pin it, endorsed by a pinned one. */
  pinPasskey: defineRpc({
    subject: `${P}.pin_passkey`,
    callers: ['gateway'],
    request: PinPasskeyRequestSchema,
    response: PinPasskeyResponseSchema,
    timeoutMs: 5_000,
    validate: (m) => [
      ...check.uuid(m.userId, 'userId'),
      ...credentialId(m.credentialId, 'credentialId'),
      ...validateProof(m.endorsement, 'endorsement'),
    ],
  }),
  /** gateway (the portal), after the person removed a passkey. */
  unpinPasskey: defineRpc({
    subject: `${P}.unpin_passkey`,
    callers: ['gateway'],
    request: UnpinPasskeyRequestSchema,
    response: UnpinPasskeyResponseSchema,
    validate: (m) => [...check.uuid(m.userId, 'userId'), ...credentialId(m.credentialId, 'credentialId')],
  }),
  /** gateway (the portal): which of the person's passkeys can sign for their Personal Server. */
  listPinnedPasskeys: defineRpc({
    subject: `${P}.list_pinned_passkeys`,
    callers: ['gateway'],
    request: ListPinnedPasskeysRequestSchema,
    response: ListPinnedPasskeysResponseSchema,
    validate: (m) => check.uuid(m.userId, 'userId'),
  }),
  /** User or app revocation; the reply means the owning shard has committed it. */
  revokeGrant: defineRpc({
    subject: `${P}.revoke_grant`,
    callers: ['connection-broker'],
    request: RevokeGrantRequestSchema,
    response: RevokeGrantResponseSchema,
    validate: validateRevoke,
  }),
  /** Connection deleted: crypto-shred its data key, drop its records and grants. */
  deleteConnection: defineRpc({
    subject: `${P}.delete_connection`,
    callers: ['connection-broker'],
    request: DeleteConnectionRequestSchema,
    response: DeleteConnectionResponseSchema,
    validate: (m) => [...check.uuid(m.connectionId, 'connectionId'), ...check.uuid(m.userId, 'userId')],
  }),
  /** sync-worker: idempotent upsert of normalized records (and tombstones). */
  writeRecords: defineRpc({
    subject: `${P}.write_records`,
    callers: ['sync-worker'],
    request: WriteRecordsRequestSchema,
    response: WriteRecordsResponseSchema,
    timeoutMs: 10_000,
    validate: validateWrite,
  }),
  /** gateway, for the person's portal: live records per type of one of their connections. */
  countRecords: defineRpc({
    subject: `${P}.count_records`,
    callers: ['gateway'],
    request: CountRecordsRequestSchema,
    response: CountRecordsResponseSchema,
    timeoutMs: 2_000,
    validate: (m) => [...check.uuid(m.userId, 'userId'), ...check.uuid(m.connectionId, 'connectionId')],
  }),
  /** gateway, on a directory-cache miss: which shard owns this connection. */
  locateConnection: defineRpc({
    subject: `${P}.locate_connection`,
    callers: ['gateway'],
    request: LocateConnectionRequestSchema,
    response: LocateConnectionResponseSchema,
    timeoutMs: 1_500,
    validate: (m) => check.uuid(m.connectionId, 'connectionId'),
  }),

  // --- per shard -----------------------------------------------------------------
  /** The query path: gateway → owning shard, one round trip. */
  shardQuery: defineShardRpc({
    prefix,
    verb: 'query',
    callers: ['gateway'],
    request: QueryRecordsRequestSchema,
    response: QueryRecordsResponseSchema,
    timeoutMs: 3_000,
    validate: queryValidate,
    // Every records query crosses here twice; protobuf-es's reflective codec was ~2 % of the
    // gateway's CPU (codecs/query-records.ts).
    encodeRequest: encodeQueryRecordsRequest,
    decodeRequest: decodeQueryRecordsRequest,
    decodeResponse: decodeQueryRecordsResponse,
  }),
  /** The person's own export (portal): gateway → owning shard, for the person the gateway resolved. */
  shardExport: defineShardRpc({
    prefix,
    verb: 'export',
    callers: ['gateway'],
    request: ExportRecordsRequestSchema,
    response: ExportRecordsResponseSchema,
    timeoutMs: 10_000,
    validate: (m) => [
      ...check.uuid(m.userId, 'userId'),
      ...check.uuid(m.connectionId, 'connectionId'),
      ...check.maxLength(m.cursor, 200, 'cursor'),
      ...(m.limit < 1 || m.limit > MAX_QUERY_LIMIT
        ? [{ path: 'limit', message: `must be 1..${MAX_QUERY_LIMIT}` }]
        : []),
    ],
  }),
  /** The forward of delete_connection to the owner, which zeroes the key it holds in memory. */
  shardDeleteConnection: defineShardRpc({
    prefix,
    verb: 'delete_connection',
    callers: ['personal-server'],
    request: DeleteConnectionRequestSchema,
    response: DeleteConnectionResponseSchema,
    validate: (m) => [...check.uuid(m.connectionId, 'connectionId'), ...check.uuid(m.userId, 'userId')],
  }),
  /** One shard's readiness: personal-server's `ps.v1.health` asks every shard through these. */
  shardHealth: defineShardRpc({
    prefix,
    verb: 'health',
    callers: ['personal-server'],
    request: GetReadinessRequestSchema,
    response: GetReadinessResponseSchema,
    timeoutMs: 1_000,
  }),
} as const;
