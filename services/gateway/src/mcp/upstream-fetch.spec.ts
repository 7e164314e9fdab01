import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { checkUpstreamUrl, upstreamFetch, UpstreamTooLargeError } from './upstream-fetch.js';

// The gateway's upstream fetch against a local HTTP server: answers past the byte limit fail
// whether they declare their length or stream it, a silent server times out, redirects are
// never followed, and addresses are checked at registration and at every exchange.
let server: Server;
let base = '';
const open = { allowHttp: true, allowPrivateNetworks: true };

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === '/declared') res.writeHead(200, { 'content-length': '4096' }).end('x'.repeat(4096));
    else if (req.url === '/streamed') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('y'.repeat(800));
      setTimeout(() => res.end('y'.repeat(800)), 10);
    } else if (req.url === '/silent') {
      // never answers
    } else if (req.url === '/redirect') res.writeHead(302, { location: 'http://169.254.169.254/' }).end();
    else res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe('upstreamFetch', () => {
  const http = () => upstreamFetch({ policy: open, timeoutMs: 300, maxBytes: 1024 });

  it('passes an answer within the limits', async () => {
    const { fetch, close } = http();
    const res = await fetch(`${base}/ok`);
    expect(await res.json()).toEqual({ ok: true });
    await close();
  });

  it('refuses an answer that declares or streams more than the limit', async () => {
    const { fetch, close } = http();
    await expect(fetch(`${base}/declared`)).rejects.toBeInstanceOf(UpstreamTooLargeError);
    const streamed = await fetch(`${base}/streamed`);
    await expect(streamed.text()).rejects.toBeInstanceOf(UpstreamTooLargeError);
    await close();
  });

  it('gives up on a server that does not answer in time', async () => {
    const { fetch, close } = http();
    await expect(fetch(`${base}/silent`)).rejects.toMatchObject({ name: 'TimeoutError' });
    await close();
  });

  it('never follows a redirect', async () => {
    const { fetch, close } = http();
    const res = await fetch(`${base}/redirect`);
    expect(res.status).toBe(302);
    await close();
  });

  it('refuses non-public and insecure addresses unless the operator allows them', async () => {
    const strict = { allowHttp: false, allowPrivateNetworks: false };
    for (const url of [
      'http://mcp.example.com/mcp',
      'https://127.0.0.1/mcp',
      'https://[::1]/mcp',
      'https://169.254.169.254/latest',
      'https://10.0.0.8/mcp',
      'https://user:pw@mcp.example.com/mcp',
      'not a url',
    ])
      expect(() => checkUpstreamUrl(url, strict)).toThrow(expect.objectContaining({ code: 'validation_failed' }));
    expect(checkUpstreamUrl('https://mcp.example.com/mcp', strict).href).toBe('https://mcp.example.com/mcp');
    const { fetch, close } = upstreamFetch({
      policy: { allowHttp: true, allowPrivateNetworks: false },
      timeoutMs: 1_000,
      maxBytes: 1024,
    });
    await expect(fetch(`${base}/ok`)).rejects.toMatchObject({ code: 'validation_failed' });
    // A name that resolves to loopback is refused at connection time (DNS rebinding).
    await expect(fetch(`http://localhost:${new URL(base).port}/ok`)).rejects.toThrow();
    await close();
  });
});
