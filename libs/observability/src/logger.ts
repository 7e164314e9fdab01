import { type DestinationStream, type Logger, type LoggerOptions as PinoOptions, pino } from 'pino';

import { REDACT_PATHS, REDACTED, scrubSecrets } from './redaction.js';
import { currentRequestContext } from './request-context.js';
import { activeTraceIds } from './tracing.js';

/** pino's levels, for env schemas (`z.enum(LOG_LEVELS)`). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export interface LoggerOptions {
  service: string;
  /** One of LOG_LEVELS; the service reads it from its env (LOG_LEVEL). Default `info`. */
  level?: string;
  /** Where lines go; stdout when absent. Tests pass an in-memory stream. */
  destination?: DestinationStream;
}

/**
 * A JSON-lines logger: `time` (ISO), `level` (label), `service`, `msg`, plus
 * `trace_id`/`span_id` of the active span and `request_id` of the request context.
 *
 * Every argument passes through scrubSecrets before pino sees it (messages, merge
 * objects, errors, interpolation values), and pino's redact covers the known paths on
 * top, so a secret never reaches the stream even if a caller logs a whole request.
 */
export function createLogger(opts: LoggerOptions): Logger {
  const options: PinoOptions = {
    level: opts.level ?? 'info',
    base: { service: opts.service },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: REDACTED },
    // Errors arrive already scrubbed into plain objects; pino's default err serializer
    // would rebuild them as `type: "Object"` and drop `cause`, so keep our shape.
    serializers: { err: scrubSecrets },
    formatters: {
      level: (label) => ({ level: label }),
      // child({ ... }) bindings are printed on every line of the child; scrub them once.
      bindings: (bindings) => scrubSecrets(bindings) as Record<string, unknown>,
    },
    hooks: {
      logMethod(args, method) {
        method.apply(this, scrubArgs(args) as Parameters<typeof method>);
      },
    },
    mixin: correlationFields,
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

function scrubArgs(args: unknown[]): unknown[] {
  const [first, ...rest] = args;
  // pino would put a bare Error under `err` and use its raw message as msg; do that here
  // so both go out scrubbed.
  if (first instanceof Error) {
    const err = scrubSecrets(first) as { message: string };
    return [{ err }, ...(rest.length > 0 ? rest.map(scrubSecrets) : [err.message])];
  }
  return args.map(scrubSecrets);
}

function correlationFields(): Record<string, string> {
  const fields: Record<string, string> = {};
  const { traceId, spanId } = activeTraceIds();
  if (traceId && spanId) {
    fields.trace_id = traceId;
    fields.span_id = spanId;
  }
  const request = currentRequestContext();
  if (request) fields.request_id = request.requestId;
  return fields;
}
