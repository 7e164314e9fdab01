import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { sourceGet } from './source-get.js';

/** Two local "sources" on two origins; each records the headers it was sent. */
function source(
  handle: (path: string, res: ServerResponse, req: IncomingMessage) => void,
): Promise<{ server: Server; url: string; seen: IncomingHttpHeaders[] }> {
  const seen: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    handle(req.url ?? '/', res, req);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }),
    ),
  );
}

const PAGE = JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ id: i, name: `item ${i}` })));
const MiB = 1024 * 1024;
/** 64 MiB of zeros: ~64 KB gzipped, twice the 32 MiB a body may decode to. */
const BOMB = gzipSync(Buffer.alloc(64 * MiB));
/** Connections that have carried a request already, so /stale can tell a reused one. */
const used = new WeakSet<object>();

describe('sourceGet', () => {
  let a: Awaited<ReturnType<typeof source>>;
  let b: Awaited<ReturnType<typeof source>>;
  const get = (url: string) => sourceGet(url, { authorization: 'Bearer t0ken' }, AbortSignal.timeout(5_000));

  beforeAll(async () => {
    b = await source((_path, res) => res.end(PAGE));
    a = await source((path, res, req) => {
      const reused = used.has(req.socket);
      used.add(req.socket);
      // The source closes an idle kept-alive connection just as the next request arrives on it.
      if (path === '/stale' && reused) return void req.socket.destroy();
      if (path === '/bomb') return res.writeHead(200, { 'content-encoding': 'gzip' }).end(BOMB);
      if (path === '/huge') {
        res.on('error', () => undefined).writeHead(200); // the client hangs up past 32 MiB
        const chunk = Buffer.alloc(MiB, 0x20);
        for (let i = 0; i < 33; i++) res.write(chunk);
        return void res.end();
      }
      // Error answers whose bodies cannot be decoded, or are long: the status must survive.
      if (path === '/expired') return res.writeHead(401, { 'content-encoding': 'gzip' }).end('not gzip at all');
      if (path === '/gone') return res.writeHead(404, { 'content-encoding': 'br' }).end(BOMB);
      if (path === '/verbose') return res.writeHead(429, { 'retry-after': '1' }).end(Buffer.alloc(MiB, 0x61));
      if (path === '/corrupt') return res.writeHead(200, { 'content-encoding': 'gzip' }).end('not gzip at all');
      const body = Buffer.from(PAGE);
      const encoded: Record<string, [string, Buffer]> = {
        '/gzip': ['gzip', gzipSync(body)],
        '/deflate': ['deflate', deflateSync(body)],
        '/deflate-raw': ['deflate', deflateRawSync(body)],
        '/br': ['br', brotliCompressSync(body)],
      };
      encoded['/gzip-br'] = ['gzip, br', brotliCompressSync(gzipSync(body))];
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

  it.each(['/gzip', '/deflate', '/deflate-raw', '/br', '/gzip-br'])(
    'decodes a %s body, and asks for compressed ones',
    async (path) => {
      const res = await get(`${a.url}${path}`);
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe(PAGE);
      expect(a.seen.at(-1)).toMatchObject({ 'accept-encoding': 'gzip, deflate, br', authorization: 'Bearer t0ken' });
      expect(a.seen.at(-1)?.['user-agent']).toBeTruthy(); // GitHub refuses requests without one
    },
  );

  it('follows a redirect on the same origin with the credentials, and to another origin without them', async () => {
    const credentials = { Authorization: 'Bearer t0ken', Cookie: 'session=s', 'Proxy-Authorization': 'Basic cA==' };
    const signal = AbortSignal.timeout(5_000);
    expect((await sourceGet(`${a.url}/moved`, credentials, signal)).body.toString()).toBe(PAGE);
    expect(a.seen.at(-1)).toMatchObject({ authorization: 'Bearer t0ken', cookie: 'session=s' });
    expect((await sourceGet(`${a.url}/elsewhere`, credentials, signal)).body.toString()).toBe(PAGE);
    expect(b.seen.at(-1)).not.toHaveProperty('authorization');
    expect(b.seen.at(-1)).not.toHaveProperty('cookie');
    expect(b.seen.at(-1)).not.toHaveProperty('proxy-authorization');
  });

  it('sends a request again, once, when the source closed the kept-alive connection it went out on', async () => {
    await get(`${a.url}/gzip`); // leaves a connection in the pool
    const before = a.seen.length;
    expect((await get(`${a.url}/stale`)).status).toBe(304);
    expect(a.seen.length - before).toBe(2); // the reset one, then the one answered
  });

  it('refuses a body over 32 MiB, raw or once decoded, with source_error', async () => {
    await expect(get(`${a.url}/huge`)).rejects.toMatchObject({ code: 'source_error', message: /32 MiB/ });
    await expect(get(`${a.url}/bomb`)).rejects.toMatchObject({ code: 'source_error', message: /32 MiB/ });
    await expect(get(`${a.url}/corrupt`)).rejects.toMatchObject({ code: 'source_error' });
  });

  it('keeps the status of an error answer whatever its body: not decoded, at most 64 KB read', async () => {
    expect((await get(`${a.url}/expired`)).status).toBe(401);
    expect((await get(`${a.url}/gone`)).status).toBe(404);
    const throttled = await get(`${a.url}/verbose`);
    expect([throttled.status, throttled.headers.get('retry-after')]).toEqual([429, '1']);
    expect(throttled.body.length).toBeLessThanOrEqual(64 * 1024);
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
