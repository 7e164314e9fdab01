import { invalid } from './tree-math.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * RFC 8785 (JSON Canonicalization Scheme): keys sorted by UTF-16 code units, no whitespace,
 * ECMAScript number and string serialization — which is exactly what JSON.stringify does
 * for primitives, so only ordering and rejecting non-JSON values are done here. The same
 * value always yields the same bytes, which is what makes a leaf hash reproducible.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) invalid('canonical JSON has no NaN or Infinity');
    return JSON.stringify(value);
  }
  // Built by concatenation rather than entries/map/join: the audit writer canonicalizes every
  // event, and the intermediate arrays were a measurable share of its time and garbage.
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i += 1) out += (i === 0 ? '' : ',') + canonicalJson(value[i]);
    return `${out}]`;
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const record = value as Record<string, unknown>;
    // Array.prototype.sort without a comparator orders strings by UTF-16 code units (RFC 8785 §3.2.3).
    const keys = Object.keys(record).sort();
    let out = '{';
    let first = true;
    for (const key of keys) {
      const item = record[key];
      if (item === undefined) continue;
      out += `${first ? '' : ','}${JSON.stringify(key)}:${canonicalJson(item)}`;
      first = false;
    }
    return `${out}}`;
  }
  // Dates, Buffers, bigints, class instances: their JSON form is ambiguous, so the caller converts.
  return invalid(`canonical JSON cannot encode a ${typeof value === 'object' ? 'non-plain object' : typeof value}`);
}
