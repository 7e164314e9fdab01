import { isDatabaseUnavailable } from './database-unavailable.js';
import { type ErrorCode, ErrorCodes, isErrorCode } from './error-codes.js';

/** A field-level problem, as listed in problem+json `errors` and NATS error replies. */
export interface FieldProblem {
  /** JSON pointer-ish path of the offending field, e.g. `scopes.0`. */
  path: string;
  message: string;
}

/**
 * The only error services throw on purpose. It carries a stable code and a message
 * that is safe to show to the caller; never a stack, a secret or a token. Edges map it:
 * HTTP → problem+json, NATS → typed error reply.
 */
export class AppError extends Error {
  override readonly name = 'AppError';

  constructor(
    readonly code: ErrorCode,
    message: string = ErrorCodes[code].title,
    readonly problems: FieldProblem[] = [],
    options?: { cause?: unknown; extensions?: Record<string, string> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.extensions = options?.extensions ?? {};
  }

  /**
   * RFC 9457 extension members the HTTP edge adds to the problem (a `connectUrl` to act on).
   * Safe to show to the caller, like the message; not carried over NATS.
   */
  readonly extensions: Readonly<Record<string, string>>;

  get status(): number {
    return ErrorCodes[this.code].status;
  }

  /** Rebuilds an AppError from a wire reply; unknown codes become `internal`. */
  static fromWire(code: string, message: string, problems: FieldProblem[] = []): AppError {
    return new AppError(isErrorCode(code) ? code : 'internal', message, problems);
  }

  /**
   * Anything thrown becomes an AppError; what is not one is hidden behind `internal`,
   * except a database that cannot be reached (Postgres restarting, pool exhausted): that is
   * a 503 `service_unavailable` the caller may retry, in every service and on both edges
   * (HTTP problem+json and NATS error replies both come through here).
   */
  static from(error: unknown): AppError {
    if (error instanceof AppError) return error;
    if (isDatabaseUnavailable(error))
      return new AppError('service_unavailable', 'The database is not reachable right now; retry later', [], {
        cause: error,
      });
    return new AppError('internal', ErrorCodes.internal.title, [], { cause: error });
  }
}
