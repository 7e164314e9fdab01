/**
 * The record catalog leaves optional fields out rather than null: drop null and undefined
 * values (top level only; bodies are flat).
 */
export function compact<T extends Record<string, unknown>>(body: T): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) if (v !== null && v !== undefined && v !== '') out[k] = v;
  return out;
}
