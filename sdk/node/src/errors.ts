import { ERROR_CODES } from './generated/error-codes.js';
import type { ErrorCode, Problem } from './types.js';

/** A field-level problem (`errors` in the problem document): which field and why. */
export interface FieldProblem {
  path?: string;
  message?: string;
}

/**
 * What a status means when the answer is not a problem document the SDK recognises (a
 * proxy's HTML 502, or a code from a gateway newer than this SDK): callers still get a code
 * from the catalog to switch on, and `problem` keeps what was actually sent.
 */
function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 400:
      return 'malformed_request';
    case 401:
      return 'unauthenticated';
    case 403:
      return 'forbidden';
    case 404:
      return 'route_not_found';
    case 409:
      return 'conflict';
    case 413:
      return 'payload_too_large';
    case 415:
      return 'unsupported_media_type';
    case 422:
      return 'validation_failed';
    case 429:
      return 'rate_limited';
    case 503:
      return 'service_unavailable';
    case 504:
      return 'deadline_exceeded';
    default:
      return 'internal';
  }
}

/**
 * Every answer outside 2xx. `code` is the gateway's stable code (never changes meaning), so
 * `switch (error.code)` is the way to branch; the subclasses below exist for `instanceof`
 * on the codes an app backend most often acts on.
 */
export class GatewayError extends Error {
  override readonly name: string = 'GatewayError';
  readonly code: ErrorCode;
  readonly status: number;
  /** Safe to show or log: the gateway never puts secrets in it. */
  readonly detail: string;
  /** The gateway's request id (also in its logs and audit trail): quote it in a support request. */
  readonly requestId: string | undefined;
  readonly errors: FieldProblem[];
  /** Seconds the gateway asked to wait (Retry-After), when it said. */
  readonly retryAfterSeconds: number | undefined;
  /** The problem document as received, or undefined when the body was not one. */
  readonly problem: Partial<Problem> | undefined;

  constructor(init: {
    code: ErrorCode;
    status: number;
    detail: string;
    requestId?: string;
    errors?: FieldProblem[];
    retryAfterSeconds?: number;
    problem?: Partial<Problem>;
  }) {
    super(`${init.code} (${init.status}): ${init.detail}`);
    this.code = init.code;
    this.status = init.status;
    this.detail = init.detail;
    this.requestId = init.requestId;
    this.errors = init.errors ?? [];
    this.retryAfterSeconds = init.retryAfterSeconds;
    this.problem = init.problem;
  }
}

/** The app's grant on the connection was revoked (by the person or the app); it stays revoked. */
export class GrantRevokedError extends GatewayError {
  override readonly name = 'GrantRevokedError';
}
/** No such connection for this app, or no grant on it (existence never leaks as a 403). */
export class ConnectionNotFoundError extends GatewayError {
  override readonly name = 'ConnectionNotFoundError';
}
/** The record type asked for is outside the scopes the person granted. */
export class ScopeNotGrantedError extends GatewayError {
  override readonly name = 'ScopeNotGrantedError';
}
/** An org, user or application policy refused; `errors` name the deciding layer and rules. */
export class PolicyDeniedError extends GatewayError {
  override readonly name = 'PolicyDeniedError';
}
/** The API key or token is missing, unknown or revoked. */
export class AuthenticationError extends GatewayError {
  override readonly name = 'AuthenticationError';
}
/** The input was refused (`validation_failed`, `unknown_field`); `errors` lists the fields. */
export class ValidationError extends GatewayError {
  override readonly name = 'ValidationError';
}
/** 429 or 503 after the retries ran out (or on a request that is not safe to retry). */
export class UnavailableError extends GatewayError {
  override readonly name = 'UnavailableError';
}

type GatewayErrorClass = new (init: ConstructorParameters<typeof GatewayError>[0]) => GatewayError;

const CLASSES: Partial<Record<ErrorCode, GatewayErrorClass>> = {
  grant_revoked: GrantRevokedError,
  connection_not_found: ConnectionNotFoundError,
  scope_not_granted: ScopeNotGrantedError,
  policy_denied: PolicyDeniedError,
  unauthenticated: AuthenticationError,
  validation_failed: ValidationError,
  unknown_field: ValidationError,
  rate_limited: UnavailableError,
  service_unavailable: UnavailableError,
  not_ready: UnavailableError,
  policy_unavailable: UnavailableError,
  audit_unavailable: UnavailableError,
};

const KNOWN: ReadonlySet<string> = new Set<string>(ERROR_CODES);
const isKnown = (code: string): code is ErrorCode => KNOWN.has(code);

/** Builds the typed error for a non-2xx answer from its status, headers and body text. */
export function errorFromResponse(status: number, body: string, retryAfterSeconds?: number): GatewayError {
  let problem: Partial<Problem> | undefined;
  try {
    const parsed: unknown = JSON.parse(body);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) problem = parsed;
  } catch {
    problem = undefined;
  }
  const sent = typeof problem?.code === 'string' ? problem.code : undefined;
  const code = sent !== undefined && isKnown(sent) ? sent : codeForStatus(status);
  const Class = CLASSES[code] ?? GatewayError;
  return new Class({
    code,
    status,
    detail: typeof problem?.detail === 'string' ? problem.detail : body.slice(0, 500) || `HTTP ${status}`,
    ...(typeof problem?.requestId === 'string' ? { requestId: problem.requestId } : {}),
    ...(Array.isArray(problem?.errors) ? { errors: problem.errors } : {}),
    ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
    ...(problem ? { problem } : {}),
  });
}

/** The gateway could not be reached at all (DNS, refused connection, timeout). */
export class GatewayNetworkError extends Error {
  override readonly name = 'GatewayNetworkError';
}
