import { AppError, type ErrorCode, ErrorCodes } from '@context-gateway/errors';

/** RFC 9457 problem details, with our stable `code` and the request id for support. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  code: ErrorCode;
  requestId: string;
  errors?: { path: string; message: string }[];
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
const PROBLEM_TYPE_BASE = 'https://context-gateway.dev/problems/';

export function toProblem(error: AppError, instance: string, requestId: string): Problem {
  return {
    type: `${PROBLEM_TYPE_BASE}${error.code}`,
    title: ErrorCodes[error.code].title,
    status: error.status,
    detail: error.message,
    instance,
    code: error.code,
    requestId,
    ...(error.problems.length > 0 ? { errors: error.problems } : {}),
    // Extension members never replace the standard ones above.
    ...Object.fromEntries(Object.entries(error.extensions).filter(([key]) => !STANDARD_MEMBERS.has(key))),
  };
}

const STANDARD_MEMBERS = new Set(['type', 'title', 'status', 'detail', 'instance', 'code', 'requestId', 'errors']);

/** Fastify's own errors (raised before our handlers run) by their stable `code`. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'malformed_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'malformed_request',
  FST_ERR_CTP_INVALID_JSON_BODY: 'malformed_request',
  FST_ERR_BAD_URL: 'malformed_request',
};

/** Status codes Nest's built-in HttpExceptions use, for the ones that reach us. */
const STATUS_CODES: Record<number, ErrorCode> = {
  400: 'malformed_request',
  401: 'unauthenticated',
  403: 'forbidden',
  404: 'route_not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'validation_failed',
  429: 'rate_limited',
  503: 'service_unavailable',
};

/**
 * Whatever was thrown, as an AppError: ours pass through; framework errors map by their
 * stable codes; anything else is `internal` (its details go to the log, not the caller).
 */
export function normalizeHttpError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof SyntaxError)
    return new AppError('malformed_request', 'The body is not valid JSON', [], { cause: error });
  const e = error as { code?: unknown; statusCode?: unknown; getStatus?: () => number; message?: string };
  // Own keys only: an error whose code is 'constructor' must not find Object's.
  const fastifyCode =
    typeof e?.code === 'string' && Object.hasOwn(FASTIFY_CODES, e.code) ? FASTIFY_CODES[e.code] : undefined;
  if (fastifyCode) return new AppError(fastifyCode, describeFastify(fastifyCode), [], { cause: error });
  const status =
    typeof e?.getStatus === 'function' ? e.getStatus() : typeof e?.statusCode === 'number' ? e.statusCode : undefined;
  if (status !== undefined && STATUS_CODES[status]) {
    const code = STATUS_CODES[status];
    return new AppError(code, code === 'malformed_request' ? 'The request could not be parsed' : undefined, [], {
      cause: error,
    });
  }
  return AppError.from(error);
}

function describeFastify(code: ErrorCode): string {
  switch (code) {
    case 'payload_too_large':
      return 'The body is larger than this endpoint accepts';
    case 'unsupported_media_type':
      return 'The body must be application/json';
    default:
      return 'The body could not be parsed';
  }
}
