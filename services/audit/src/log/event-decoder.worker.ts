import { parentPort } from 'node:worker_threads';

import { decodePacked, type PackedPayloads } from './event-decoding.js';

/** Worker thread entry (see EventDecoder): decodes packed AUDIT payloads, answers by request id. */
const port = parentPort;
if (!port) throw new Error('event-decoder.worker must run as a worker thread');
port.on('message', (request: PackedPayloads & { id: number }) => {
  try {
    port.postMessage({ id: request.id, batch: decodePacked(request) });
  } catch (error) {
    port.postMessage({ id: request.id, error: error instanceof Error ? error.message : String(error) });
  }
});
