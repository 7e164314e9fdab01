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
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get status(): number {
    return ErrorCodes[this.code].status;
  }

  /** Rebuilds an AppError from a wire reply; unknown codes become `internal`. */
  static fromWire(code: string, message: string, problems: FieldProblem[] = []): AppError {
    return new AppError(isErrorCode(code) ? code : 'internal', message, problems);
  }

  /** Anything thrown becomes an AppError; what is not one is hidden behind `internal`. */
  static from(error: unknown): AppError {
    if (error instanceof AppError) return error;
    return new AppError('internal', ErrorCodes.internal.title, [], { cause: error });
  }
}
