import { AppError, type FieldProblem } from '@context-gateway/errors';
import { type CallHandler, type ExecutionContext, Injectable, type NestInterceptor } from '@nestjs/common';
import type { Observable } from 'rxjs';

/**
 * Refuses a NATS request any of whose strings (at any depth) contains a NUL: Postgres text
 * cannot hold one, so it would reach the database as a query error and come back as
 * `internal`. The gateway refuses it at the public edge already; this keeps a request from
 * any other peer a 422 `validation_failed` too. (Decoded protobuf strings are always
 * well-formed UTF-16: the decoder has no way to produce a lone surrogate.)
 */
@Injectable()
export class StorableStringsInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() === 'rpc') {
      const problems = nulStrings(context.switchToRpc().getData(), []);
      if (problems.length > 0) throw new AppError('validation_failed', 'A string contains a NUL character', problems);
    }
    return next.handle();
  }
}

function nulStrings(value: unknown, path: string[]): FieldProblem[] {
  if (typeof value === 'string')
    return value.includes('\0') ? [{ path: path.join('.'), message: 'must not contain a NUL character' }] : [];
  // A decoded message nests as deep as its schema; the bound only guards against recursion by mistake.
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value) || path.length > 32) return [];
  return Object.entries(value).flatMap(([key, item]) => nulStrings(item, [...path, key]));
}
