import { Agent as HttpAgent, type IncomingMessage, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { brotliDecompressSync, gunzipSync, inflateRawSync, inflateSync } from 'node:zlib';

import { AppError } from '@context-gateway/errors';

/** A source's answer to a GET, its body read in full and decoded (see sourceGet for the limits). */
export interface SourceAnswer {
  status: number;
  headers: Headers;
  body: Buffer;
}

/** What `fetch` sent and decoded for us; sources compress large JSON pages. */
const ACCEPT_ENCODING = 'gzip, deflate, br';
/** GitHub refuses requests without one; `fetch` sent `node`. */
const USER_AGENT = 'context-gateway-sync';
/** Fewer than fetch's 20: no source we call redirects more than once or twice. */
const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/**
 * The largest body accepted, raw and again after decoding: GitHub's largest pages are ~500 KB
 * of JSON, and a source (or whatever sits in its place) that sends more, or a small gzip that
 * inflates past it, must not take the worker's memory with it.
 */
const MAX_BODY_BYTES = 32 * 1024 * 1024;
/**
 * How much of any other answer (401, 404, 429, 5xx, a redirect) is read: only its status and
 * headers matter to SourceHttp, and it is never decoded, so a broken or huge body cannot turn
 * a 401 (refresh the token) or a 404 (`not_found`) into a network error.
 */
const MAX_OTHER_BODY_BYTES = 64 * 1024;
/** fetch (undici) gave up on a chain of more content-codings than this, and so do we. */
const MAX_CODINGS = 5;
/** Headers that carry the user's credentials, dropped when a redirect leads to another origin (as fetch does). */
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];

/**
 * Kept-alive connections per source host, closed after 4 s idle as fetch's dispatcher closed
 * them (its keepAliveTimeout), or sooner when the source's `Keep-Alive: timeout=` says so:
 * a connection held longer is one the source has likely closed already, and the next
 * request on it would fail (send() retries that case once).
 */
const IDLE_SOCKET_MS = 4_000;
const agents = {
  'http:': new HttpAgent({ keepAlive: true, timeout: IDLE_SOCKET_MS }),
  'https:': new HttpsAgent({ keepAlive: true, timeout: IDLE_SOCKET_MS }),
};

/**
 * One GET as `fetch` made it for SourceHttp — keep-alive, compressed bodies decoded,
 * redirects followed (the credential headers dropped when one leads to another origin, as
 * fetch does) — over node:http. `fetch` cost ~0.7 ms more CPU per request than this
 * (its Request/Response/Headers objects and the body read through a web stream): 7 µs per
 * record of a 100-item page, about a sixth of a sync-worker's CPU while a sync ran.
 * A 200 body is limited to 32 MiB raw and decoded (`source_error` past it); any other
 * answer's body is read up to 64 KB and left encoded. Rejects on network errors and when
 * `signal` aborts (the caller retries or gives up), with `source_error` on a body over the
 * limit or one its content-encoding does not decode (retrying would get the same).
 */
export async function sourceGet(
  url: string,
  headers: Record<string, string>,
  signal: AbortSignal,
): Promise<SourceAnswer> {
  let target = new URL(url);
  // Lower case, so the caller's `Authorization` is the one dropped on a cross-origin redirect.
  let sent: Record<string, string> = { 'user-agent': USER_AGENT, 'accept-encoding': ACCEPT_ENCODING };
  for (const [name, value] of Object.entries(headers)) sent[name.toLowerCase()] = value;
  for (let redirects = 0; ; redirects++) {
    const res = await send(target, sent, signal);
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if (status === 200) {
      const body = decode(await readBody(res, target), res.headers['content-encoding'], target);
      return { status, headers: toHeaders(res.rawHeaders), body };
    }
    // Read to its end, so the connection goes back to the pool, unless it is too long to.
    const body = await readSome(res, MAX_OTHER_BODY_BYTES);
    if (REDIRECTS.has(status) && location !== undefined && redirects < MAX_REDIRECTS) {
      const next = new URL(location, target);
      if (next.protocol !== 'http:' && next.protocol !== 'https:')
        throw new AppError('source_error', `The source redirected ${target.pathname} to a ${next.protocol} URL`);
      if (next.origin !== target.origin) sent = withoutCredentials(sent);
      target = next;
      continue;
    }
    return { status, headers: toHeaders(res.rawHeaders), body };
  }
}

function withoutCredentials(headers: Record<string, string>): Record<string, string> {
  const kept = { ...headers };
  for (const name of CREDENTIAL_HEADERS) delete kept[name];
  return kept;
}

/**
 * Sends the request. A kept-alive connection the source closed just as we reused it fails
 * with ECONNRESET before any answer; that request never reached the source, so it is sent
 * again at once, once, on another connection (a GET is safe to repeat anyway).
 */
function send(url: URL, headers: Record<string, string>, signal: AbortSignal, retry = true): Promise<IncomingMessage> {
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const agent = url.protocol === 'https:' ? agents['https:'] : agents['http:'];
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(url, { method: 'GET', headers, agent, signal }, (res) => {
      answered = true;
      resolve(res);
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (!answered && retry && req.reusedSocket && error.code === 'ECONNRESET' && !signal.aborted)
        resolve(send(url, headers, signal, false));
      else reject(error);
    });
    req.end();
  });
}

/** A 200's body in full; over MAX_BODY_BYTES the connection is closed and the request fails. */
function readBody(res: IncomingMessage, url: URL): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    res.on('data', (chunk: Buffer) => {
      length += chunk.length;
      if (length > MAX_BODY_BYTES) {
        reject(tooLarge(url)); // first: destroying emits 'aborted'
        res.destroy();
      } else chunks.push(chunk);
    });
    res.on('end', () => {
      // A body cut short (the connection closed early) is an error, as it was for fetch.
      if (!res.complete) reject(new Error('The source closed the connection before the body ended'));
      else resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length));
    });
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('The source closed the connection before the body ended')));
  });
}

/**
 * Up to `max` bytes of a body nobody decodes, never failing: whatever arrived, when the body
 * ends, breaks off or passes `max` (then the connection is closed rather than drained).
 */
function readSome(res: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const done = () => resolve(Buffer.concat(chunks, Math.min(length, max)));
    res.on('data', (chunk: Buffer) => {
      chunks.push(length + chunk.length > max ? chunk.subarray(0, max - length) : chunk);
      length += chunk.length;
      if (length >= max && !res.complete) {
        res.destroy();
        done();
      }
    });
    res.on('end', done);
    res.on('error', done);
    res.on('close', done);
  });
}

/**
 * The body with its content-codings undone, last applied first ("gzip, br" is br over gzip).
 * A coding we did not ask for anywhere in the list leaves the body as it came, as fetch did
 * (the JSON parse then fails with `source_error`).
 */
function decode(body: Buffer, encoding: string | undefined, url: URL): Buffer {
  if (body.length === 0 || encoding === undefined) return body;
  const codings = encoding
    .toLowerCase()
    .split(',')
    .map((c) => c.trim())
    .filter((c) => c !== '' && c !== 'identity');
  if (codings.length > MAX_CODINGS)
    throw new AppError('source_error', `The source sent ${url.pathname} with ${codings.length} content-codings`);
  const decoders = codings.map((c) => DECODERS.get(c));
  if (decoders.includes(undefined)) return body;
  let decoded = body;
  try {
    for (const decoder of decoders.reverse()) decoded = (decoder as Decoder)(decoded);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(url);
    throw new AppError('source_error', `The source sent ${url.pathname} in a ${encoding} that does not decode`, [], {
      cause: error,
    });
  }
  return decoded;
}

type Decoder = (body: Buffer) => Buffer;
/** Each stops at MAX_BODY_BYTES of output: a small compressed body may inflate to gigabytes. */
const limit = { maxOutputLength: MAX_BODY_BYTES };
const DECODERS = new Map<string, Decoder>([
  ['gzip', (body) => gunzipSync(body, limit)],
  ['x-gzip', (body) => gunzipSync(body, limit)],
  // Zlib-wrapped, as the RFC says, or raw, as some servers send it (fetch took both).
  [
    'deflate',
    (body) => (((body[0] as number) & 0x0f) === 0x08 ? inflateSync(body, limit) : inflateRawSync(body, limit)),
  ],
  ['br', (body) => brotliDecompressSync(body, limit)],
]);

function tooLarge(url: URL): AppError {
  return new AppError('source_error', `The source sent more than ${MAX_BODY_BYTES >> 20} MiB for ${url.pathname}`);
}

function toHeaders(raw: string[]): Headers {
  const headers = new Headers();
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i] as string, raw[i + 1] as string);
  return headers;
}
