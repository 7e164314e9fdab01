// @ts-check
// Rewrites the bundle positions in a stack trace (a log line, or several) to the .ts file and
// line they came from, through the bundle's source map, offline. The images run without
// --enable-source-maps (decoding the map costs a running service >100 MiB, docs/operations.md
// "What a service runs, and its source maps"), so their traces name dist/main.bundle.js.
//   node scripts/bundle/trace-sources.mjs services/gateway/dist/main.bundle.js.map < trace.txt
// The map must be the one built with the bundle that logged the trace (same commit).
import { readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, relative, resolve } from 'node:path';

/** `file:///app/dist/main.bundle.js:188454:15` or a plain path: the bundle's line and column (1-based). */
const POSITION = /(?:file:\/\/)?[^\s()"'\\]*main\.bundle\.js:(\d+):(\d+)/g;

/**
 * @param {string} text
 * @param {SourceMap} map
 * @param {string} mapDir sources in the map are relative to it
 */
function traceSources(text, map, mapDir) {
  return text.replace(POSITION, (whole, line, column) => {
    const entry = /** @type {{ originalSource?: string, originalLine?: number, originalColumn?: number }} */ (
      map.findEntry(Number(line) - 1, Number(column) - 1)
    );
    if (entry.originalSource === undefined || entry.originalLine === undefined) return whole;
    const source = relative(process.cwd(), resolve(mapDir, entry.originalSource));
    return `${source}:${entry.originalLine + 1}:${(entry.originalColumn ?? 0) + 1}`;
  });
}

const mapFile = process.argv[2];
if (!mapFile) {
  console.error('usage: node scripts/bundle/trace-sources.mjs <dist/main.bundle.js.map> < trace.txt');
  process.exit(2);
}
const map = new SourceMap(JSON.parse(readFileSync(mapFile, 'utf8')));
process.stdout.write(traceSources(readFileSync(0, 'utf8'), map, dirname(resolve(mapFile))));
