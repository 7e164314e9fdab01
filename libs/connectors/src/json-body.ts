/**
 * Bodies at least this long that are a JSON array are parsed element by element. V8 puts a
 * string longer than about 128 KB in its large-object space: decoding a 500 KB GitHub page
 * into one string cost twice as much CPU as parsing it (fresh pages mapped and faulted in for
 * every page), about a fifth of a sync-worker's CPU under `pnpm bench:sync`. Groups of
 * elements are decoded into small strings instead. Below it, one string is cheaper.
 */
const SPLIT_FROM_BYTES = 64 * 1024;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

/**
 * A large array is parsed in groups of elements about this long: cut at the first top-level
 * comma this far past the last cut. Parsing each element on its own cost a string and a
 * JSON.parse call per element, twice a single JSON.parse for an array of small numbers; a
 * group keeps that overhead small and its string well under V8's large-object threshold
 * (unless one element alone is that large).
 */
const GROUP_BYTES = 16 * 1024;

/**
 * `JSON.parse` of a UTF-8 body, with the same result and the same refusals (it throws a
 * SyntaxError on anything that is not one JSON value). A large body whose top level is an
 * array is cut at some of its top-level commas into groups `g1,…,gk`, and each group parsed
 * as `[gi]`. When every `[gi]` is a non-empty array, each `gi` is a comma-separated list of
 * JSON values, so `[g1,…,gk]` is JSON and its value is those arrays joined (JSON's grammar is
 * unambiguous); a cut in a wrong place cannot go unnoticed — the groups on either side of it
 * are not lists of JSON values and their parse throws. An empty group (`[ ,1]`, `[1, ]`,
 * blank space alone between cuts) is refused the same way, by parsing the whole body.
 */
export function parseJsonBody(bytes: Buffer): unknown {
  const first = skipSpace(bytes, 0);
  if (bytes.length < SPLIT_FROM_BYTES || bytes[first] !== OPEN_ARRAY) return JSON.parse(bytes.toString('utf8'));
  const items: unknown[] = [];
  const n = bytes.length;
  let depth = 0;
  let start = first + 1;
  for (let i = first; i < n; i++) {
    const c = bytes[i];
    if (c === QUOTE) {
      // To the closing quote: an escaped character (\" or \\ included) is stepped over.
      for (i++; i < n && bytes[i] !== QUOTE; i++) if (bytes[i] === BACKSLASH) i++;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      depth++;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      if (--depth > 0) continue;
      // The top-level array's end: only blank space may follow, and `[ ]` holds nothing.
      if (c !== CLOSE_ARRAY || skipSpace(bytes, i + 1) !== n) break;
      if (items.length > 0 || skipSpace(bytes, start) !== i) {
        if (!pushGroup(items, bytes, start, i)) break;
      }
      return items;
    } else if (c === COMMA && depth === 1 && i - start >= GROUP_BYTES) {
      if (!pushGroup(items, bytes, start, i)) break;
      start = i + 1;
    }
  }
  // Unterminated, a mismatched end or an empty group: not JSON. Parsed whole, for JSON.parse's own error.
  return JSON.parse(bytes.toString('utf8'));
}

/** Pushes the elements of the group `[start, end)`; false when it holds none (blank space only). */
function pushGroup(items: unknown[], bytes: Buffer, start: number, end: number): boolean {
  const group = JSON.parse(`[${bytes.toString('utf8', start, end)}]`) as unknown[];
  if (group.length === 0) return false;
  for (const item of group) items.push(item);
  return true;
}

/** The index of the first byte at or after `from` that is not JSON whitespace. */
function skipSpace(bytes: Buffer, from: number): number {
  let i = from;
  while (i < bytes.length) {
    const c = bytes[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}
