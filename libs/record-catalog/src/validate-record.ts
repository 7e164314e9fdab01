import { AppError } from '@context-gateway/errors';

import { recordType } from './record-types.js';

/**
 * Parses a record body for `type` against the catalog: unknown type or a body that does
 * not match → AppError('invalid_record') listing the problems. Returns the normalized body
 * (defaults applied), which is what gets stored.
 */
export function validateRecord(type: string, body: unknown): Record<string, unknown> {
  const definition = recordType(type);
  if (!definition)
    throw new AppError('invalid_record', `Unknown record type "${type}"`, [
      { path: 'type', message: 'not in the record catalog' },
    ]);
  const result = definition.schema.safeParse(body);
  if (!result.success) {
    throw new AppError(
      'invalid_record',
      `The body does not match record type "${type}"`,
      result.error.issues.map((i) => ({ path: i.path.join('.') || '(root)', message: i.message })),
    );
  }
  return result.data;
}
