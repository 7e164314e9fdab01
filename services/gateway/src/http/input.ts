import type { FieldProblem } from '@context-gateway/errors';
import { z } from 'zod';

/**
 * The shapes every route's input is held to, declared once so that one kind of value is
 * accepted in one spelling on every route.
 */

/**
 * An id: a UUID in its canonical, lower-case spelling, the only one the API ever hands out.
 * Other spellings are refused (422 `validation_failed`, like any malformed id) rather than
 * folded: the services compare ids as strings and bind ciphertexts to them, so
 * `6F96…` and `6f96…` would be two different connections to a shard (a decryption
 * failure, not a 404), two subjects in the audit trail and two keys in every cache.
 */
export const id = () => z.uuid().regex(/^[0-9a-f-]+$/, 'must be a UUID in lower case');

/** Query strings are text; what a number parameter may be spelled as. */
const DECIMAL = /^[0-9]{1,16}$/;

/**
 * An integer query parameter, spelled in decimal digits only and range-checked. `Number()`
 * (what z.coerce does) also reads `0x10`, `1e3`, ` 16` and `''` (as 0), so a client's
 * mistake would be answered as if it had asked for something else.
 */
export function queryInt(min: number, max: number) {
  return z.preprocess(
    (value) => (typeof value === 'string' && DECIMAL.test(value) ? Number(value) : value),
    z
      .number({
        error: (issue) => (issue.code === 'invalid_type' ? 'must be an integer in decimal digits' : undefined),
      })
      .int()
      .min(min)
      .max(max),
  );
}

/**
 * Every string that came in (values and object keys, at any depth) that the stores cannot
 * keep as sent: a NUL (Postgres text refuses it, so it would surface as a server error) or
 * text that is not well-formed UTF-16 (a lone surrogate, which UTF-8 cannot encode: it
 * would be stored as U+FFFD, silently not what the client sent).
 */
export function unstorableStrings(value: unknown, where: string): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const visit = (v: unknown, path: string[]) => {
    if (typeof v === 'string') {
      const problem = stringProblem(v);
      if (problem) problems.push({ path: path.join('.') || where, message: problem });
      return;
    }
    // Parsed JSON nests only as deep as the body limit allows; the bound only guards the stack.
    if (typeof v !== 'object' || v === null || path.length > 64 || ArrayBuffer.isView(v)) return;
    for (const [key, item] of Object.entries(v)) {
      const keyProblem = stringProblem(key);
      if (keyProblem) problems.push({ path: path.join('.') || where, message: `has a field name that ${keyProblem}` });
      visit(item, [...path, key]);
    }
  };
  visit(value, []);
  return problems;
}

/** A surrogate code unit that is not half of a pair (String.isWellFormed, which ES2023's lib does not type). */
const LONE_SURROGATE = /\p{Cs}/u;

function stringProblem(value: string): string | undefined {
  if (value.includes('\0')) return 'must not contain a NUL character';
  if (LONE_SURROGATE.test(value)) return 'must be well-formed Unicode (no lone surrogates)';
  return undefined;
}
