import { AppError, type FieldProblem } from '@context-gateway/errors';
import { check, isStorableText } from '@context-gateway/proto';
import { type CallHandler, type ExecutionContext, Injectable, type NestInterceptor } from '@nestjs/common';
import type { Observable } from 'rxjs';

/**
 * Refuses a NATS request any of whose strings or object keys (at any depth) is not storable
 * text (the contract's `check.storable`, proto's validation.ts), i.e. contains a NUL: Postgres text
 * cannot hold one, so it would reach the database as a query error and come back as
 * `internal`. The gateway refuses it at the public edge already; this keeps a request from
 * any other peer a 422 `validation_failed` too. (Decoded protobuf strings are always
 * well-formed UTF-16: the decoder has no way to produce a lone surrogate.)
 */
@Injectable()
export class StorableStringsInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() === 'rpc') {
      const problems = unstorableStrings(context.switchToRpc().getData(), []);
      if (problems.length > 0) throw new AppError('validation_failed', 'A string contains a NUL character', problems);
    }
    return next.handle();
  }
}

/**
 * Every string or key that is not storable text (`check.storable`: it holds a NUL), with its path. Walked with one shared path stack and nothing
 * allocated while every string is clean: it runs on every request, and a sync write carries
 * 500 records (copying the path and the entries for each field was ~1.7 µs per record, a
 * few percent of a shard's CPU while a sync wrote).
 */
function unstorableStrings(value: unknown, path: string[], problems: FieldProblem[] = []): FieldProblem[] {
  if (typeof value === 'string') {
    if (!isStorableText(value)) problems.push(...check.storable(value, path.join('.')));
    return problems;
  }
  // A decoded message nests as deep as its schema; the bound only guards against recursion by mistake.
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value) || path.length > 32) return problems;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      path.push(String(i));
      unstorableStrings(value[i], path, problems);
      path.pop();
    }
    return problems;
  }
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    path.push(key);
    // A map field's keys are strings that get stored too (a proto map<string, …>).
    if (!isStorableText(key)) problems.push(...check.storable(key, path.join('.')));
    unstorableStrings((value as Record<string, unknown>)[key], path, problems);
    path.pop();
  }
  return problems;
}
