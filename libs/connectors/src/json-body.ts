/**
 * Bodies at least this long that are a JSON array are parsed element by element. V8 puts a
 * string longer than about 128 KB in its large-object space: decoding a 500 KB GitHub page
 * into one string cost twice as much CPU as parsing it (fresh pages mapped and faulted in for
 * every page), about a fifth of a sync-worker's CPU under `pnpm bench:sync`. Elements are
 * decoded one at a time into small strings instead. Below it, one string is cheaper.
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
 * `JSON.parse` of a UTF-8 body, with the same result and the same refusals (it throws a
 * SyntaxError on anything that is not one JSON value). A large body whose top level is an
 * array is cut at its top-level commas and each element parsed on its own: when the text is
 * `[e1,…,en]` with each `ei` one JSON value, it is an array of exactly those values (JSON's
 * grammar is unambiguous), so a cut in a wrong place cannot go unnoticed — the pieces on
 * either side of it are not JSON values and their parse throws.
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
      if (items.length > 0 || skipSpace(bytes, start) !== i) items.push(parseSlice(bytes, start, i));
      return items;
    } else if (c === COMMA && depth === 1) {
      items.push(parseSlice(bytes, start, i));
      start = i + 1;
    }
  }
  // Unterminated, or a mismatched end: not JSON. Parsed whole, for JSON.parse's own error.
  return JSON.parse(bytes.toString('utf8'));
}

function parseSlice(bytes: Buffer, start: number, end: number): unknown {
  return JSON.parse(bytes.toString('utf8', start, end));
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
