import { invalid } from './tree-math.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Keys a JavaScript object enumerates before all others, in numeric rather than insertion order. */
const ARRAY_INDEX_KEY = /^(?:0|[1-9]\d*)$/;

/**
 * RFC 8785 (JSON Canonicalization Scheme): keys sorted by UTF-16 code units, no whitespace,
 * ECMAScript number and string serialization — which is exactly what JSON.stringify does
 * for primitives. The same value always yields the same bytes, which is what makes a leaf
 * hash reproducible.
 *
 * The audit writer canonicalizes every event, so the common case is fast: the value is
 * copied with its keys inserted in sorted order (checking it is plain JSON on the way) and
 * serialized by one native JSON.stringify. Objects with array-index keys ("0", "17") cannot
 * take that path — JavaScript enumerates those first, in numeric order, whatever the
 * insertion order — and are serialized by hand.
 */
export function canonicalJson(value: unknown): string {
  const walk = { indexKeys: false };
  const sorted = sortedCopy(value, walk);
  return walk.indexKeys ? serializeByHand(sorted) : JSON.stringify(sorted);
}

/**
 * The value with every object's keys inserted in sorted order, checked to be plain JSON on
 * the way. Notes in `walk` whether any object has array-index keys.
 */
function sortedCopy(value: unknown, walk: { indexKeys: boolean }): unknown {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'number')
    return Number.isFinite(value) ? value : invalid('canonical JSON has no NaN or Infinity');
  if (Array.isArray(value)) {
    const out = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i += 1) out[i] = sortedCopy(value[i], walk);
    return out;
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    const record = value as Record<string, unknown>;
    // Array.prototype.sort without a comparator orders strings by UTF-16 code units (RFC 8785 §3.2.3).
    const keys = Object.keys(record).sort();
    const out: Record<string, unknown> = {};
    for (const key of keys) {
      if (record[key] === undefined) continue;
      if (ARRAY_INDEX_KEY.test(key)) walk.indexKeys = true;
      const item = sortedCopy(record[key], walk);
      // An assignment to "__proto__" would set the prototype and drop the key.
      if (key === '__proto__')
        Object.defineProperty(out, key, { value: item, enumerable: true, writable: true, configurable: true });
      else out[key] = item;
    }
    return out;
  }
  // Dates, Buffers, bigints, class instances: their JSON form is ambiguous, so the caller converts.
  return invalid(`canonical JSON cannot encode a ${typeof value === 'object' ? 'non-plain object' : typeof value}`);
}

/** For an already checked, sorted copy whose objects JavaScript would enumerate out of order. */
function serializeByHand(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i += 1) out += (i === 0 ? '' : ',') + serializeByHand(value[i]);
    return `${out}]`;
  }
  const record = value as Record<string, unknown>;
  let out = '{';
  let first = true;
  for (const key of Object.keys(record).sort()) {
    out += `${first ? '' : ','}${JSON.stringify(key)}:${serializeByHand(record[key])}`;
    first = false;
  }
  return `${out}}`;
}
