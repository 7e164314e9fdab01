// @ts-check
// Turns the raw output of many child processes into one readable stream: every line is
// prefixed with the process name (padded so the JSON lines align) and, on a terminal,
// coloured per process. Output arrives in arbitrary chunks, so partial lines are held back
// until their newline arrives; otherwise two services' halves would interleave.

const COLOURS = [36, 33, 35, 32, 34, 91, 96, 93, 95, 92];

/**
 * Picks a stable colour for each name from its position in `names`.
 * @param {readonly string[]} names
 * @returns {Map<string, number>}
 */
export function assignColours(names) {
  return new Map(names.map((name, index) => [name, /** @type {number} */ (COLOURS[index % COLOURS.length])]));
}

/**
 * @param {string} name
 * @param {{ width: number, colour?: number | undefined }} options
 */
export function formatPrefix(name, { width, colour }) {
  const label = `${name.padEnd(width)} |`;
  return colour === undefined ? `${label} ` : `\u001b[${colour}m${label}\u001b[0m `;
}

/**
 * @typedef {{ push(chunk: string | Buffer): void, flush(): void }} LineSplitter
 */

/**
 * Calls `emit` with each complete line (without its newline) found in the pushed chunks.
 * @param {(line: string) => void} emit
 * @returns {LineSplitter}
 */
export function createLineSplitter(emit) {
  let pending = '';
  return {
    push(chunk) {
      pending += chunk.toString();
      const lines = pending.split(/\r?\n/);
      pending = lines.pop() ?? '';
      for (const line of lines) emit(line);
    },
    flush() {
      if (pending !== '') emit(pending);
      pending = '';
    },
  };
}

/**
 * A splitter whose lines come out prefixed with the process name.
 * @param {string} name
 * @param {{ width: number, colour?: number | undefined, write: (line: string) => void, onLine?: (line: string) => void }} options
 */
export function createPrefixedLogger(name, { width, colour, write, onLine }) {
  const prefix = formatPrefix(name, { width, colour });
  return createLineSplitter((line) => {
    onLine?.(line);
    write(prefix + line);
  });
}

/**
 * Keeps the last `size` items: the lines we show when a service fails to become ready.
 * @template T
 * @param {number} size
 */
export function createRing(size) {
  /** @type {T[]} */
  const items = [];
  return {
    /** @param {T} item */
    add(item) {
      items.push(item);
      if (items.length > size) items.shift();
    },
    /** @returns {T[]} */
    values() {
      return [...items];
    },
  };
}
