import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { sourceGet } from './source-get.js';

/** Two local "sources" on two origins; each records the headers it was sent. */
function source(
  handle: (path: string, res: ServerResponse) => void,
): Promise<{ server: Server; url: string; seen: IncomingHttpHeaders[] }> {
  const seen: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    handle(req.url ?? '/', res);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }),
    ),
  );
}

const PAGE = JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ id: i, name: `item ${i}` })));

describe('sourceGet', () => {
  let a: Awaited<ReturnType<typeof source>>;
  let b: Awaited<ReturnType<typeof source>>;
  const get = (url: string) => sourceGet(url, { authorization: 'Bearer t0ken' }, AbortSignal.timeout(5_000));

  beforeAll(async () => {
    b = await source((_path, res) => res.end(PAGE));
    a = await source((path, res) => {
      const body = Buffer.from(PAGE);
      const encoded: Record<string, [string, Buffer]> = {
        '/gzip': ['gzip', gzipSync(body)],
        '/deflate': ['deflate', deflateSync(body)],
        '/deflate-raw': ['deflate', deflateRawSync(body)],
        '/br': ['br', brotliCompressSync(body)],
      };
      const hit = encoded[path];
      if (hit) return res.writeHead(200, { 'content-encoding': hit[0] }).end(hit[1]);
      if (path === '/moved') return res.writeHead(301, { location: '/gzip' }).end();
      if (path === '/elsewhere') return res.writeHead(302, { location: `${b.url}/page` }).end();
      if (path === '/cut') {
        res.writeHead(200, { 'content-length': String(body.length) });
        res.write(body.subarray(0, 100));
        return res.socket?.destroy();
      }
      if (path === '/slow') return void setTimeout(() => res.end(PAGE), 2_000);
      res.writeHead(304, { etag: 'W/"x"' }).end();
    });
  });
  afterAll(async () => {
    await new Promise((r) => a.server.close(r));
    await new Promise((r) => b.server.close(r));
  });

  it.each(['/gzip', '/deflate', '/deflate-raw', '/br'])(
    'decodes a %s body, and asks for compressed ones',
    async (path) => {
      const res = await get(`${a.url}${path}`);
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe(PAGE);
      expect(a.seen.at(-1)).toMatchObject({ 'accept-encoding': 'gzip, deflate, br', authorization: 'Bearer t0ken' });
      expect(a.seen.at(-1)?.['user-agent']).toBeTruthy(); // GitHub refuses requests without one
    },
  );

  it('follows a redirect on the same origin with the token, and to another origin without it', async () => {
    expect((await get(`${a.url}/moved`)).body.toString()).toBe(PAGE);
    expect(a.seen.at(-1)?.authorization).toBe('Bearer t0ken');
    expect((await get(`${a.url}/elsewhere`)).body.toString()).toBe(PAGE);
    expect(b.seen.at(-1)?.authorization).toBeUndefined();
  });

  it('gives a 304 with its headers and no body', async () => {
    const res = await get(`${a.url}/unchanged`);
    expect([res.status, res.headers.get('etag'), res.body.length]).toEqual([304, 'W/"x"', 0]);
  });

  it('rejects a body cut short, and a request its signal aborts', async () => {
    await expect(get(`${a.url}/cut`)).rejects.toThrow();
    await expect(sourceGet(`${a.url}/slow`, {}, AbortSignal.timeout(100))).rejects.toThrow();
  });
});
