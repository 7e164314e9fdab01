import { parentPort } from 'node:worker_threads';

import { decodePacked, type PackedPayloads } from './event-decoding.js';

/** Worker thread entry (see EventDecoder): decodes packed AUDIT payloads, answers by request id. */
const port = parentPort;
if (!port) throw new Error('event-decoder.worker must run as a worker thread');
port.on('message', (request: PackedPayloads & { id: number }) => {
  try {
    const batch = decodePacked(request);
    // The bytes move rather than copy: Utf8Column and CopyFieldsEncoder gave them ArrayBuffers of their own.
    port.postMessage({ id: request.id, batch }, [
      batch.canonicalEvents.buffer as ArrayBuffer,
      batch.searchFields.buffer as ArrayBuffer,
    ]);
  } catch (error) {
    port.postMessage({ id: request.id, error: error instanceof Error ? error.message : String(error) });
  }
});
