/**
 * The record catalog leaves optional fields out rather than null: drop null and undefined
 * values (top level only; bodies are flat). A `for…in` over the literal the normalizers
 * pass (own keys only, in the same order as Object.entries) allocates no entry pairs: this
 * runs once per record.
 */
export function compact<T extends Record<string, unknown>>(body: T): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k in body) {
    const v = body[k];
    if (v !== null && v !== undefined && v !== '') out[k] = v;
  }
  return out;
}
