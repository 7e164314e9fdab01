import { connectionPath } from './connections.js';
import type { Transport } from './http.js';
import type { ImportResult, SyncRequested, SyncStatus } from './types.js';

export interface WaitForSyncOptions {
  /** Wait for a sync that finished after this time (e.g. just before calling `now`). Default: any. */
  finishedAfter?: Date;
  /** Default 60 s. */
  timeoutMs?: number;
  /** Default 1 s. */
  intervalMs?: number;
}

/** Where syncing stands for a connection, and "sync now". */
export class SyncClient {
  constructor(
    private readonly http: Transport,
    private readonly time: { now: () => number; sleep: (ms: number) => Promise<void> },
  ) {}

  status(connectionId: string): Promise<SyncStatus> {
    return this.http.request<SyncStatus>({ method: 'GET', path: `${connectionPath(connectionId)}/sync` });
  }

  /** Queues an incremental sync; asking while one runs folds into one more run after it. */
  now(connectionId: string): Promise<SyncRequested> {
    return this.http.request<SyncRequested>({ method: 'POST', path: `${connectionPath(connectionId)}/sync` });
  }

  /**
   * Polls the status until a sync has finished (`idle` with `lastSuccessAt` after
   * `finishedAfter`). Throws when the connection needs the person to connect again, or on timeout.
   */
  async waitForSync(connectionId: string, options: WaitForSyncOptions = {}): Promise<SyncStatus> {
    const after = options.finishedAfter?.getTime() ?? -Infinity;
    const deadline = this.time.now() + (options.timeoutMs ?? 60_000);
    for (;;) {
      const status = await this.status(connectionId);
      if (status.state === 'needs_reauth')
        throw new Error(`connection ${connectionId} needs the person to connect again (${status.lastError ?? ''})`);
      if (status.state === 'idle' && status.lastSuccessAt !== null && Date.parse(status.lastSuccessAt) > after)
        return status;
      if (this.time.now() >= deadline)
        throw new Error(`connection ${connectionId}: no finished sync within the timeout (state ${status.state})`);
      await this.time.sleep(options.intervalMs ?? 1_000);
    }
  }
}

/** What an upload is made of: the whole file, or its chunks as they are read. */
export type ImportSource = string | Uint8Array | Blob | AsyncIterable<Uint8Array>;

export interface ImportProgress {
  /** Bytes handed to the connection so far. */
  sentBytes: number;
  /** The file's size when known up front (not for a stream). */
  totalBytes: number | undefined;
}

export interface ImportOptions {
  /** Called as the upload is read by the HTTP client (per chunk of at most 64 KiB). */
  onProgress?: (progress: ImportProgress) => void;
  /** Default `text/csv`. */
  contentType?: string;
}

const CHUNK = 64 * 1024;

/** A source as chunks, each reported to `onProgress` as the HTTP client pulls it. */
function progressStream(source: ImportSource, onProgress?: (p: ImportProgress) => void): ReadableStream<Uint8Array> {
  const totalBytes =
    typeof source === 'string'
      ? Buffer.byteLength(source)
      : source instanceof Uint8Array
        ? source.byteLength
        : source instanceof Blob
          ? source.size
          : undefined;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    if (typeof source === 'string' || source instanceof Uint8Array) {
      const bytes = typeof source === 'string' ? Buffer.from(source) : source;
      for (let at = 0; at < bytes.byteLength; at += CHUNK) yield bytes.subarray(at, at + CHUNK);
    } else if (source instanceof Blob) {
      for await (const chunk of source.stream()) yield chunk;
    } else {
      yield* source;
    }
  }
  const iterator = chunks();
  let sentBytes = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await iterator.next();
      if (next.done) return controller.close();
      sentBytes += next.value.byteLength;
      controller.enqueue(next.value);
      onProgress?.({ sentBytes, totalBytes });
    },
    async cancel() {
      await iterator.return(undefined);
    },
  });
}

/** Uploads of a file-export source's data (Netflix's ViewingActivity.csv), docs/sync.md. */
export class ImportsClient {
  constructor(private readonly http: Transport) {}

  /**
   * Streams the file to the gateway, which validates every row as it arrives: the result
   * counts what was imported and lists rejected rows by line number. A file given whole
   * (string, bytes, Blob) is retried on 429/503 — uploading the same file again adds nothing,
   * records are keyed by their content; a stream cannot be replayed, so it is sent once.
   */
  upload(connectionId: string, source: ImportSource, options: ImportOptions = {}): Promise<ImportResult> {
    const replayable = typeof source === 'string' || source instanceof Uint8Array || source instanceof Blob;
    return this.http.request<ImportResult>({
      method: 'POST',
      path: `${connectionPath(connectionId)}/imports`,
      body: {
        contentType: options.contentType ?? 'text/csv',
        content: () => progressStream(source, options.onProgress),
      },
      idempotent: replayable,
    });
  }
}
