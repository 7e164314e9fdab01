import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Client ID Metadata Documents served over https on this machine, with a certificate made for
 * the occasion (openssl, self-signed, 127.0.0.1 / 127.0.0.2 / localhost): identity trusts it
 * through OAUTH_CIMD_TEST_CA_FILE. Each path answers as `routes` says; `requests` counts what
 * was asked, so a test can show that a URL nobody allowed was never fetched.
 */
export interface MetadataDocumentServer {
  /** The CA (the certificate itself) to trust. */
  caFile: string;
  /** `https://<host>:<port>` for the given loopback address. */
  origin(host?: '127.0.0.1' | '127.0.0.2'): string;
  requests: string[];
  stop(): Promise<void>;
}

/**
 * An answer: `body` after `delayMs`; `chunked`: streamed in 1 KiB pieces with no
 * Content-Length (a limit must then be kept while reading, not from the header).
 */
export type DocumentRoute = (url: string) => { body: string; delayMs?: number; chunked?: boolean } | undefined;

export async function startMetadataDocumentServer(route: DocumentRoute): Promise<MetadataDocumentServer> {
  const dir = mkdtempSync(join(tmpdir(), 'cimd-'));
  const key = join(dir, 'key.pem');
  const caFile = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'],
      ...['-keyout', key, '-out', caFile, '-subj', '/CN=cimd-test'],
      ...['-addext', 'subjectAltName=IP:127.0.0.1,IP:127.0.0.2,DNS:localhost'],
      ...['-addext', 'basicConstraints=critical,CA:TRUE'],
    ],
    { stdio: 'ignore' },
  );
  const requests: string[] = [];
  const options = { key: readFileSync(key), cert: readFileSync(caFile) };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = `https://${req.headers.host ?? ''}${req.url ?? '/'}`;
    requests.push(url);
    const answer = route(url);
    if (!answer) {
      res.writeHead(404).end();
      return;
    }
    const send = () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      if (!answer.chunked) return void res.end(answer.body);
      for (let i = 0; i < answer.body.length; i += 1024) res.write(answer.body.slice(i, i + 1024));
      res.end();
    };
    if (answer.delayMs) setTimeout(send, answer.delayMs).unref();
    else send();
  };
  // 127.0.0.2 is how a test reaches "a private address" identity must refuse (only 127.0.0.1 is let through).
  const servers = new Map<string, Server>();
  for (const host of ['127.0.0.1', '127.0.0.2']) {
    const server = createServer(options, handler);
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    servers.set(host, server);
  }
  const port = (host: string) => (servers.get(host)?.address() as AddressInfo).port;
  return {
    caFile,
    origin: (host = '127.0.0.1') => `https://${host}:${port(host)}`,
    requests,
    async stop() {
      for (const server of servers.values()) {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
