import { AppError, type FieldProblem } from '@context-gateway/errors';
import type { z } from 'zod';

import { unstorableStrings } from './input.js';

/**
 * Parses input with a route's schema. Unknown fields get their own code (`unknown_field`)
 * because a client sending them usually has a typo or an outdated SDK, and silently
 * dropping them would hide that; every other problem is `validation_failed`. Returns the
 * parsed value (defaults applied, types coerced).
 *
 * Before any schema runs, every string of the input (at any depth, keys included) is held to
 * what the stores can keep (input.ts): checked here once for every route and field, so no
 * field can forget it and no NUL ever reaches a service as a database error.
 */
export function parseInput<S extends z.ZodType>(
  schema: S,
  value: unknown,
  where: 'body' | 'query' | 'params',
): z.infer<S> {
  const unstorable = unstorableStrings(value, where);
  if (unstorable.length > 0) throw new AppError('validation_failed', `The request ${where} is not valid`, unstorable);
  const result = schema.safeParse(value ?? (where === 'body' ? undefined : {}));
  if (result.success) return result.data;
  const problems: FieldProblem[] = result.error.issues.flatMap((issue) =>
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => ({ path: [...issue.path, key].join('.'), message: 'is not a known field' }))
      : [{ path: issue.path.join('.') || where, message: issue.message }],
  );
  const onlyUnknown = problems.length > 0 && problems.every((p) => p.message === 'is not a known field');
  throw new AppError(
    onlyUnknown ? 'unknown_field' : 'validation_failed',
    `The request ${where} is not valid`,
    problems,
  );
}
