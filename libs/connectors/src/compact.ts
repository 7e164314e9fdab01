/**
 * The record catalog leaves optional fields out rather than null: drop null and undefined
 * values (top level only; bodies are flat). Own keys only, in their order (Object.keys, as
 * Object.entries would give them): a `for…in` would also visit inherited enumerable ones.
 * Keys, not entries: no pair allocated per field, and this runs once per record.
 */
export function compact<T extends Record<string, unknown>>(body: T): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(body)) {
    const v = body[k];
    if (v !== null && v !== undefined && v !== '') out[k] = v;
  }
  return out;
}
