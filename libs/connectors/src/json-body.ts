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
 * of a group; the cut is then found by scanning the group's bytes for a top-level comma. An
 * empty group (`[ ,1]`, `[1, ]`, blank space alone between cuts) is refused the same way, by
 * parsing the whole body.
 *
 * Cuts are looked for cheaply first: in an array of objects (a page of a listing) the comma
 * between two elements follows a `}` and comes before a `{`, and Buffer#indexOf finds `},`
 * natively; most are between elements. Scanning every byte in JavaScript to track depth and
 * strings cost more than the parse itself (2.0 against 1.3 ms of CPU for a 500 KB GitHub page).
 */
export function parseJsonBody(bytes: Buffer): unknown {
  const first = skipSpace(bytes, 0);
  if (bytes.length < SPLIT_FROM_BYTES || bytes[first] !== OPEN_ARRAY) return JSON.parse(bytes.toString('utf8'));
  // The top-level array's end: only blank space may follow it.
  let end = bytes.length - 1;
  while (end > first && isSpace(bytes[end])) end--;
  if (end === first || bytes[end] !== CLOSE_ARRAY) return JSON.parse(bytes.toString('utf8'));
  const items: unknown[] = [];
  let start = first + 1;
  // Once no `},{` is left (an array of numbers, strings or arrays), the scan finds every cut.
  let objects = true;
  while (end - start > 2 * GROUP_BYTES) {
    let cut = objects ? objectCut(bytes, start + GROUP_BYTES, end) : -1;
    if (cut < 0) objects = false;
    if (cut < 0 || !tryGroup(items, bytes, start, cut)) {
      cut = scanCut(bytes, start, start + GROUP_BYTES, end);
      if (cut < 0) break;
      if (!tryGroup(items, bytes, start, cut)) return JSON.parse(bytes.toString('utf8'));
    }
    start = cut + 1;
  }
  // The last group; `[ ]` holds nothing.
  if (items.length === 0 && skipSpace(bytes, start) === end) return items;
  if (!tryGroup(items, bytes, start, end)) return JSON.parse(bytes.toString('utf8'));
  return items;
}

/** The comma of the first `},` at or after `from` (and before `end`) whose next non-blank byte is `{`; -1 if none. */
function objectCut(bytes: Buffer, from: number, end: number): number {
  for (let i = bytes.indexOf(OBJECT_THEN_COMMA, from); i >= 0 && i < end; i = bytes.indexOf(OBJECT_THEN_COMMA, i + 2))
    if (bytes[skipSpace(bytes, i + 2)] === OPEN_OBJECT) return i + 1;
  return -1;
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

/** Pushes the elements of the group `[start, end)`; false when it is not a non-empty list of JSON values. */
function tryGroup(items: unknown[], bytes: Buffer, start: number, end: number): boolean {
  let group: unknown[];
  try {
    group = JSON.parse(`[${bytes.toString('utf8', start, end)}]`) as unknown[];
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
