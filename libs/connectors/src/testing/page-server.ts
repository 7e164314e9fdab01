import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One answer of the page server: a JSON body (or none), a status, extra headers. */
export interface PageAnswer {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/**
 * A tiny real HTTP server for property tests: it answers each request with whatever
 * `answer` says for its path and query (generated pages with real pagination links), so a
 * connector is driven through SourceHttp exactly as against the source. Unknown paths 404.
 * `answer` can be swapped between runs (one server per test file, one page set per run).
 */
export class PageServer {
  answer: (url: URL) => PageAnswer | undefined = () => undefined;
  /** Paths asked for, in order (for asserting what the connector read). */
  readonly requests: string[] = [];
  private server?: Server;
  url = '';

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', this.url);
      this.requests.push(url.pathname + url.search);
      const a = this.answer(url);
      const status = a?.status ?? (a ? 200 : 404);
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...a?.headers });
      res.end(
        a?.body === undefined ? JSON.stringify({ error: { status, message: 'Not found' } }) : JSON.stringify(a.body),
      );
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** A fixed token source: the page server does not check tokens. */
export const staticTokens = { current: () => Promise.resolve('t'), refresh: () => Promise.resolve('t') };
