import type { LoggerService, LogLevel } from '@nestjs/common';
import type { Level, Logger } from 'pino';

// Nest's levels onto pino's; Nest's `log` is the everyday informational level.
const PINO_LEVEL: Record<LogLevel, Level> = {
  verbose: 'trace',
  debug: 'debug',
  log: 'info',
  warn: 'warn',
  error: 'error',
  fatal: 'fatal',
};
const VERBOSITY: Level[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

// Nest passes a stack trace as a plain string argument to error(); this is how its own
// ConsoleLogger tells a stack from a context name.
const STACK_LIKE = /^(.)+\n\s+at .+:\d+:\d+/;

/**
 * Lets Nest's own logging (bootstrap, router, exception handler, `new Logger(ctx)`)
 * come out as the service's JSON lines: the Nest context becomes the `context` field.
 * Use with `NestFactory.create(..., { logger: new NestLogger(logger) })`.
 */
export class NestLogger implements LoggerService {
  private readonly logger: Logger;

  constructor(logger: Logger) {
    // A child, so setLogLevels from Nest never changes the level of the service's logger.
    this.logger = logger.child({});
  }

  log(message: unknown, ...optionalParams: unknown[]): void {
    this.write('log', message, optionalParams);
  }

  error(message: unknown, ...optionalParams: unknown[]): void {
    this.write('error', message, optionalParams);
  }

  warn(message: unknown, ...optionalParams: unknown[]): void {
    this.write('warn', message, optionalParams);
  }

  debug(message: unknown, ...optionalParams: unknown[]): void {
    this.write('debug', message, optionalParams);
  }

  verbose(message: unknown, ...optionalParams: unknown[]): void {
    this.write('verbose', message, optionalParams);
  }

  fatal(message: unknown, ...optionalParams: unknown[]): void {
    this.write('fatal', message, optionalParams);
  }

  /** Nest's enabled-levels list becomes the most verbose of them; none enabled → silent. */
  setLogLevels(levels: LogLevel[]): void {
    const enabled = levels.map((l) => PINO_LEVEL[l]).filter((l) => l !== undefined);
    const mostVerbose = VERBOSITY.find((l) => enabled.includes(l));
    this.logger.level = mostVerbose ?? 'silent';
  }

  private write(nestLevel: LogLevel, message: unknown, optionalParams: unknown[]): void {
    const params = [...optionalParams];
    const fields: Record<string, unknown> = {};
    const last = params.at(-1);
    if (typeof last === 'string') {
      if (nestLevel === 'error' && STACK_LIKE.test(last)) fields.stack = last;
      else fields.context = last;
      params.pop();
    }
    if (nestLevel === 'error' && typeof params[0] === 'string' && STACK_LIKE.test(params[0])) {
      fields.stack = params.shift();
    }
    if (params.length > 0) fields.params = params;

    const level = PINO_LEVEL[nestLevel];
    if (message instanceof Error) {
      this.logger[level]({ ...fields, err: message }, message.message);
    } else if (typeof message === 'object' && message !== null) {
      this.logger[level]({ ...fields, ...(message as Record<string, unknown>) });
    } else {
      this.logger[level](fields, String(message));
    }
  }
}
