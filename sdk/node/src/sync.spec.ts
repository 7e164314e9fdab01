import { describe, expect, it } from '@jest/globals';

import { ContextGateway } from './client.js';
import type { ImportProgress } from './sync.js';

const CONNECTION = '6f1c2b7e-3a4d-4e5f-8a9b-0c1d2e3f4a5b';
const RESULT = { imported: 2, written: 2, unchanged: 0, rejected: [], rejectedTotal: 0 };

/** A gateway that reads an upload to the end, as the real one does, and keeps the bytes. */
function uploadGateway(statuses: number[] = [200]) {
  const received: { contentType: string | null; text: string }[] = [];
  const fetch = async (_input: string | URL, init?: RequestInit) => {
    const body = init?.body as ReadableStream<Uint8Array>;
    const text = await new Response(body).text();
    received.push({ contentType: new Headers(init?.headers).get('content-type'), text });
    const status = statuses.shift() ?? 200;
    return status === 200
      ? new Response(JSON.stringify(RESULT), { status })
      : new Response(JSON.stringify({ code: 'service_unavailable', status, detail: 'later' }), { status });
  };
  const client = new ContextGateway({
    baseUrl: 'https://gw.example',
    apiKey: 'cg_sk_test',
    fetch,
    sleep: () => Promise.resolve(),
  });
  return { client, received };
}

describe('imports', () => {
  const csv = 'Title,Date\n' + Array.from({ length: 20_000 }, (_, i) => `Show ${i},1/2/26`).join('\n');

  it('streams the file as text/csv and reports progress up to its size', async () => {
    const { client, received } = uploadGateway();
    const progress: ImportProgress[] = [];
    const result = await client.imports.upload(CONNECTION, csv, { onProgress: (p) => progress.push(p) });
    expect(result).toEqual(RESULT);
    expect(received).toEqual([{ contentType: 'text/csv', text: csv }]);
    const size = Buffer.byteLength(csv);
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.at(-1)).toEqual({ sentBytes: size, totalBytes: size });
    expect(progress.map((p) => p.sentBytes)).toEqual([...progress.map((p) => p.sentBytes)].sort((a, b) => a - b));
  });

  it('sends a stream once, with its size unknown', async () => {
    async function* rows() {
      for (const line of ['Title,Date\n', 'Show,1/2/26\n']) yield await Promise.resolve(Buffer.from(line));
    }
    const { client, received } = uploadGateway([503]);
    const progress: ImportProgress[] = [];
    await expect(
      client.imports.upload(CONNECTION, rows(), { onProgress: (p) => progress.push(p) }),
    ).rejects.toMatchObject({
      code: 'service_unavailable',
    });
    expect(received).toHaveLength(1);
    expect(progress.at(-1)).toEqual({ sentBytes: 23, totalBytes: undefined });
  });

  it('retries a whole file on 503: uploading the same file again adds nothing', async () => {
    const { client, received } = uploadGateway([503, 200]);
    await expect(client.imports.upload(CONNECTION, Buffer.from(csv))).resolves.toEqual(RESULT);
    expect(received.map((r) => r.text)).toEqual([csv, csv]);
  });
});

describe('sync', () => {
  it('waits for a sync that finished after the given time, polling the status', async () => {
    let clock = Date.parse('2026-12-04T12:00:00Z');
    const states = [
      { state: 'queued', lastSuccessAt: '2026-12-04T11:00:00.000Z' },
      { state: 'running', lastSuccessAt: '2026-12-04T11:00:00.000Z' },
      { state: 'idle', lastSuccessAt: '2026-12-04T12:00:03.000Z' },
    ];
    const fetch = () =>
      Promise.resolve(
        new Response(
          JSON.stringify({ lastError: null, recordsSynced: 3, nextRunAt: null, ...(states.shift() ?? states[0]) }),
        ),
      );
    const client = new ContextGateway({
      baseUrl: 'https://gw.example',
      apiKey: 'cg_sk_test',
      fetch,
      now: () => clock,
      sleep: (ms) => {
        clock += ms;
        return Promise.resolve();
      },
    });
    const status = await client.sync.waitForSync(CONNECTION, { finishedAfter: new Date(clock), intervalMs: 1_000 });
    expect(status.lastSuccessAt).toBe('2026-12-04T12:00:03.000Z');
    expect(clock).toBe(Date.parse('2026-12-04T12:00:02Z'));
  });

  it('gives up at the timeout instead of polling forever', async () => {
    let clock = 0;
    const fetch = () =>
      Promise.resolve(
        new Response(
          JSON.stringify({ state: 'running', lastSuccessAt: null, lastError: null, recordsSynced: 0, nextRunAt: null }),
        ),
      );
    const client = new ContextGateway({
      baseUrl: 'https://gw.example',
      apiKey: 'cg_sk_test',
      fetch,
      now: () => clock,
      sleep: (ms) => {
        clock += ms;
        return Promise.resolve();
      },
    });
    await expect(client.sync.waitForSync(CONNECTION, { timeoutMs: 5_000 })).rejects.toThrow(/no finished sync/);
    expect(clock).toBe(5_000);
  });
});
