/**
 * Bodies at least this long that are a JSON array are parsed in groups of elements. V8 puts a
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
 * A large array is parsed in groups of elements about this long: cut at a comma this far past
 * the last cut. Parsing each element on its own cost a string and a JSON.parse call per
 * element, twice a single JSON.parse for an array of small numbers; a group keeps that
 * overhead small and its string well under V8's large-object threshold (unless one element
 * alone is that large).
 */
const GROUP_BYTES = 16 * 1024;

/** `},`: what ends an object followed by another value (`},{` between the objects of an array). */
const OBJECT_THEN_COMMA = Buffer.from('},');

/**
 * `JSON.parse` of a UTF-8 body, with the same result and the same refusals (it throws a
 * SyntaxError on anything that is not one JSON value). A large body whose top level is an
 * array is cut at some of its commas into groups `g1,…,gk`, and each group parsed as `[gi]`.
 * When every `[gi]` is a non-empty array, each `gi` is a comma-separated list of JSON values,
 * so `[g1,…,gk]` is JSON and its value is those arrays joined (JSON's grammar is
 * unambiguous): that holds wherever the cuts are, so where to cut is only a matter of speed.
 * A cut at a wrong place (inside a string or a nested value) cannot go unnoticed — the group
 * before it is not a list of JSON values and its parse throws — and costs one failed parse
 * of a group. An empty group (`[ ,1]`, `[1, ]`, blank space alone between cuts) is refused
 * the same way, by parsing the whole body.
 *
 * Cuts are looked for cheaply first: in an array of objects (a page of a listing) the comma
 * between two elements follows a `}` and comes before a `{`, and Buffer#indexOf finds `},`
 * natively. Not every such comma is between elements (one between two labels of an issue is
 * inside it), so the `{` must open with the first element's first key (see firstKeyOf). When
 * that cut's group is refused, or there is no such cut (an array of numbers or strings), the
 * group's bytes are scanned for a top-level comma. Scanning every byte in JavaScript to track
 * depth and strings cost more than the parse itself (2.0 against 1.3 ms of CPU for a 500 KB
 * GitHub page); a refused parse of a group cost more than its scan, so a refused cut is not
 * followed by a second guess.
 *
 * `count`, when given, is told how many cuts were found natively, how many of those were
 * refused (their group's parse threw) and how many were found by the scan.
 */
export function parseJsonBody(bytes: Buffer, count?: { found: number; refused: number; scanned: number }): unknown {
  const first = skipSpace(bytes, 0);
  if (bytes.length < SPLIT_FROM_BYTES || bytes[first] !== OPEN_ARRAY) return JSON.parse(bytes.toString('utf8'));
  // The top-level array's end: only blank space may follow it.
  let end = bytes.length - 1;
  while (end > first && isSpace(bytes[end])) end--;
  if (end === first || bytes[end] !== CLOSE_ARRAY) return JSON.parse(bytes.toString('utf8'));
  const items: unknown[] = [];
  let start = first + 1;
  const firstKey = firstKeyOf(bytes, start, end);
  while (end - start > 2 * GROUP_BYTES) {
    // A `},{` then the first element's key, within the next group's worth of bytes.
    let cut = objectCut(bytes, start + GROUP_BYTES, Math.min(end, start + 2 * GROUP_BYTES), firstKey);
    if (count && cut >= 0) count.found++;
    if (cut < 0 || !tryGroup(items, bytes, start, cut)) {
      if (count && cut >= 0) count.refused++;
      cut = scanCut(bytes, start, start + GROUP_BYTES, end);
      if (cut < 0) break;
      if (count) count.scanned++;
      if (!tryGroup(items, bytes, start, cut)) return JSON.parse(bytes.toString('utf8'));
    }
    start = cut + 1;
  }
  // The last group; `[ ]` holds nothing.
  if (items.length === 0 && skipSpace(bytes, start) === end) return items;
  if (!tryGroup(items, bytes, start, end)) return JSON.parse(bytes.toString('utf8'));
  return items;
}

/**
 * The comma of the first `},` at or after `from` and before `to` whose next non-blank bytes
 * are `{` and `key`; -1 if none. Only `[from, to)` is searched: a `},` far ahead (the only
 * one, inside a string near the end of an array of strings) would otherwise be found, and a
 * group parsed up to it and refused, on every pass — parse time growing with the square of
 * the body.
 */
function objectCut(bytes: Buffer, from: number, to: number, key: Buffer): number {
  const window = bytes.subarray(from, to);
  for (let i = window.indexOf(OBJECT_THEN_COMMA); i >= 0; i = window.indexOf(OBJECT_THEN_COMMA, i + 2)) {
    const open = skipSpace(bytes, from + i + 2);
    if (bytes[open] !== OPEN_OBJECT) continue;
    const k = skipSpace(bytes, open + 1);
    if (bytes.subarray(k, k + key.length).equals(key)) return from + i + 1;
  }
  return -1;
}

/**
 * The first key of the array's first element, with its quotes (`"url"`), if that element is
 * an object: the elements of a listing share their first key, and a `},{` followed by it is
 * far more likely between elements than one inside them (between two labels of an issue, a
 * nested object's first key is another). It cannot be inside a string: there a `"` is escaped.
 * Empty when the first element is not an object with a key (then any `{` will do).
 */
function firstKeyOf(bytes: Buffer, start: number, end: number): Buffer {
  const open = skipSpace(bytes, start);
  if (bytes[open] !== OPEN_OBJECT) return Buffer.alloc(0);
  const quote = skipSpace(bytes, open + 1);
  if (bytes[quote] !== QUOTE) return Buffer.alloc(0);
  let close = quote + 1;
  while (close < end && bytes[close] !== QUOTE) close += bytes[close] === BACKSLASH ? 2 : 1;
  return close < end ? bytes.subarray(quote, close + 1) : Buffer.alloc(0);
}

/**
 * The first comma at or after `from` that is at the top level of the array, scanning from
 * `start` (just after `[` or a top-level comma); -1 if the array ends first. On bytes that are
 * not JSON it may point anywhere: the group's parse then refuses them.
 */
function scanCut(bytes: Buffer, start: number, from: number, end: number): number {
  let depth = 1;
  for (let i = start; i < end; i++) {
    const c = bytes[i];
    if (c === QUOTE) {
      // To the closing quote: an escaped character (\" or \\ included) is stepped over.
      for (i++; i < end && bytes[i] !== QUOTE; i++) if (bytes[i] === BACKSLASH) i++;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      depth++;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      if (--depth === 0) return -1;
    } else if (c === COMMA && depth === 1 && i >= from) {
      return i;
    }
  }
  return -1;
}

/**
 * Pushes the elements of the group `[start, end)`; false when it is not a non-empty list of JSON
 * values. The group's neighbours are single-byte delimiters (`[` or a comma before it, a comma
 * or `]` after it), so `[group]` is decoded in one piece with those two bytes set to `[` and `]`
 * for the decode and put back right after it: a template string around the decoded group made
 * V8 copy each 16 KB group once more to flatten it (0.3–0.5 µs per GitHub repository). The
 * body is changed for no longer than that synchronous decode, and only inside its own bytes.
 */
function tryGroup(items: unknown[], bytes: Buffer, start: number, end: number): boolean {
  const before = bytes[start - 1] as number;
  const after = bytes[end] as number;
  let text: string;
  bytes[start - 1] = OPEN_ARRAY;
  bytes[end] = CLOSE_ARRAY;
  try {
    text = bytes.toString('utf8', start - 1, end + 1);
  } finally {
    bytes[start - 1] = before;
    bytes[end] = after;
  }
  let group: unknown[];
  try {
    group = JSON.parse(text) as unknown[];
  } catch {
    return false;
  }
  if (group.length === 0) return false;
  for (const item of group) items.push(item);
  return true;
}

function isSpace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** The index of the first byte at or after `from` that is not JSON whitespace. */
function skipSpace(bytes: Buffer, from: number): number {
  let i = from;
  while (i < bytes.length && isSpace(bytes[i])) i++;
  return i;
}
