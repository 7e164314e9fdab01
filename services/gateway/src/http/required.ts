import { AppError } from '@context-gateway/errors';

/**
 * A reply field the contract always fills but proto3 cannot mark required (message fields
 * are optional on the wire). Its absence is the answering service's bug, never the caller's:
 * `internal` here, rather than a TypeError further on or a response silently lacking it.
 */
export function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new AppError('internal', `The reply has no ${what}`);
  return value;
}
