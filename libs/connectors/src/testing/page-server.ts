import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import type { SyncContext } from '../connector.js';
import type { MemoryStore } from './memory-store.js';

/** One answer of the page server: a JSON body (or none), a status, extra headers. */
export interface PageAnswer {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
  /**
   * Answer conditional requests, as GitHub does: a 200 carries an ETag over its body (only
   * the body, not the headers), and a request whose If-None-Match names it gets a 304.
   */
  etag?: boolean;
}

/**
 * A tiny real HTTP server for property tests: it answers each request with whatever
 * `answer` says for its path and query (generated pages with real pagination links), so a
 * connector is driven through SourceHttp exactly as against the source. Unknown paths 404.
 * `answer` can be swapped between runs (one server per test file, one page set per run).
 */
export class PageServer {
  answer: (url: URL, headers: IncomingHttpHeaders) => PageAnswer | undefined = () => undefined;
  /** Paths asked for, in order (for asserting what the connector read). */
  readonly requests: string[] = [];
  /** 304s answered (conditional requests whose ETag still matched). */
  notModified = 0;
  private server?: Server;
  url = '';

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', this.url);
      this.requests.push(url.pathname + url.search);
      const a = this.answer(url, req.headers);
      const status = a?.status ?? (a ? 200 : 404);
      const body =
        a?.body === undefined ? JSON.stringify({ error: { status, message: 'Not found' } }) : JSON.stringify(a.body);
      const etag =
        a?.etag && status === 200 ? `W/"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"` : undefined;
      if (etag !== undefined && req.headers['if-none-match'] === etag) {
        this.notModified += 1;
        res.writeHead(304, { etag });
        res.end();
        return;
      }
      res.writeHead(status, {
        'content-type': 'application/json; charset=utf-8',
        ...a?.headers,
        ...(etag !== undefined ? { etag } : {}),
      });
      res.end(body);
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** A connector's context against this server, writing into `store`; one attempt per request. */
  context(store: MemoryStore): SyncContext {
    return { baseUrl: this.url, tokens: staticTokens, emit: store.apply, skip: store.skip, http: { maxAttempts: 1 } };
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** A fixed token source: the page server does not check tokens. */
export const staticTokens = { current: () => Promise.resolve('t'), refresh: () => Promise.resolve('t') };
