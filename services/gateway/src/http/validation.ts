import { AppError, type FieldProblem } from '@context-gateway/errors';
import type { z } from 'zod';

/**
 * Parses input with a route's schema. Unknown fields get their own code (`unknown_field`)
 * because a client sending them usually has a typo or an outdated SDK, and silently
 * dropping them would hide that; every other problem is `validation_failed`. Returns the
 * parsed value (defaults applied, types coerced).
 */
export function parseInput<S extends z.ZodType>(
  schema: S,
  value: unknown,
  where: 'body' | 'query' | 'params',
): z.infer<S> {
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
