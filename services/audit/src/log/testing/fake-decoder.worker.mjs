// A stand-in for event-decoder.worker.js in EventDecoder's tests (Jest runs TypeScript
// sources; a worker thread needs plain JavaScript). It speaks the same protocol: each
// payload's first byte is returned as its "event id"; a payload starting with 0xFF makes
// the thread die, 0xFE makes it answer with an error.
import { parentPort } from 'node:worker_threads';

parentPort.on('message', ({ id, bytes, offsets }) => {
  const count = offsets.length - 1;
  const first = Array.from({ length: count }, (_, i) => bytes[offsets[i]]);
  if (first.includes(0xff)) process.exit(3);
  if (first.includes(0xfe)) {
    parentPort.postMessage({ id, error: 'refused' });
    return;
  }
  const column = (value) => Array.from({ length: count }, () => value);
  parentPort.postMessage({
    id,
    batch: {
      failures: [],
      messageIndex: first.map((_, i) => i),
      eventIds: first.map(String),
      // Each event's "canonical JSON" is its id as a JSON string, so ranges can be told apart.
      canonicalEvents: new TextEncoder().encode(first.map((b) => `"${b}"`).join('')),
      canonicalEnds: first.map((_, i) => first.slice(0, i + 1).reduce((n, b) => n + String(b).length + 2, 0)),
      occurredAtMs: column(0),
      searchFields: new Uint8Array(0),
      searchFieldEnds: column(0),
    },
  });
});
