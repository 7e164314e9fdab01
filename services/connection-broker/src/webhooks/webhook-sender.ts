import { lookup as dnsLookup } from 'node:dns';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';

import { AppError } from '@context-gateway/errors';
import ipaddr from 'ipaddr.js';

export interface EndpointPolicy {
  /** http:// endpoints (development only). */
  allowHttp: boolean;
  /** Loopback, private, link-local and other non-public addresses (development only). */
  allowPrivateNetworks: boolean;
}

/**
 * Checks an endpoint URL when it is configured: an absolute http(s) URL without credentials
 * or fragment, https unless the operator allows http. Addresses are checked at each delivery
 * (a name can change what it points at), by `guardedLookup`.
 */
export function checkEndpointUrl(raw: string, policy: EndpointPolicy): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new AppError('validation_failed', 'The webhook URL is not an absolute URL', [
      { path: 'url', message: 'must be an absolute https URL' },
    ]);
  }
  const problems: string[] = [];
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowHttp)) problems.push('must use https');
  if (url.username || url.password) problems.push('must not carry credentials');
  if (url.hash) problems.push('must not have a fragment');
  if (problems.length > 0)
    throw new AppError(
      'validation_failed',
      `The webhook URL ${problems.join(', ')}`,
      problems.map((message) => ({ path: 'url', message })),
    );
  // A literal address is checked now as well: refusing at configuration is clearer.
  const host = bareHost(url);
  if (ipaddr.isValid(host) && !addressAllowed(host, policy))
    throw new AppError('validation_failed', 'The webhook URL points at a non-public address', [
      { path: 'url', message: 'must resolve to a public address' },
    ]);
  return url;
}

/** The URL's host without IPv6 brackets. */
function bareHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

/** Only unicast addresses on the public internet (unless the operator allows private networks). */
function addressAllowed(address: string, policy: EndpointPolicy): boolean {
  if (policy.allowPrivateNetworks) return true;
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress())
    parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  return parsed.range() === 'unicast';
}

/**
 * A DNS lookup for the delivery's socket that refuses any answer holding a non-public
 * address. The socket connects to exactly what was checked here, so a name that resolves
 * to a public address for a check and a private one for the connection (DNS rebinding)
 * cannot slip through.
 */
function guardedLookup(policy: EndpointPolicy): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, '', 0);
      const list = addresses;
      const [first] = list;
      if (!first || list.some((a) => !addressAllowed(a.address, policy)))
        return callback(Object.assign(new Error('address refused'), { code: 'EADDRREFUSED' }), '', 0);
      if (options.all) return callback(null, list);
      return callback(null, first.address, first.family);
    });
  };
}

export interface DeliveryResult {
  /** The endpoint's HTTP status; 0 when it never answered. */
  status: number;
  /** A stable code for a failure (`timeout`, `http_503`, `address_refused`, ...); undefined on 2xx. */
  error?: string;
}

/** At most this much of an answer is read (and thrown away): an endpoint cannot make us buffer. */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * One POST of a signed message. Redirects are not followed (a 3xx is a failure), the whole
 * attempt is bounded by `timeoutMs`, and the answer's body is never kept.
 */
export function deliver(
  url: URL,
  headers: Record<string, string>,
  body: Uint8Array,
  options: { timeoutMs: number; policy: EndpointPolicy },
): Promise<DeliveryResult> {
  // A literal address in the URL is connected to without any lookup: checked here instead.
  const host = bareHost(url);
  if (ipaddr.isValid(host) && !addressAllowed(host, options.policy))
    return Promise.resolve({ status: 0, error: 'address_refused' });
  return new Promise((resolve) => {
    let settled = false;
    const done = (result: DeliveryResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json', 'content-length': String(body.byteLength) },
        lookup: guardedLookup(options.policy),
      },
      (res) => {
        let read = 0;
        res.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_ANSWER_BYTES) res.destroy();
        });
        const status = res.statusCode ?? 0;
        const finish = () => done(status >= 200 && status < 300 ? { status } : { status, error: `http_${status}` });
        res.on('end', finish);
        res.on('close', finish);
        res.on('error', finish);
      },
    );
    const timer = setTimeout(() => {
      req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' }));
      done({ status: 0, error: 'timeout' });
    }, options.timeoutMs);
    req.on('error', (error: NodeJS.ErrnoException) => {
      done({ status: 0, error: errorCode(error) });
    });
    req.end(body);
  });
}

function errorCode(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'EADDRREFUSED':
      return 'address_refused';
    case 'ECONNREFUSED':
      return 'connection_refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'dns_failed';
    case 'ETIMEDOUT':
      return 'timeout';
    case 'ECONNRESET':
      return 'connection_reset';
    default:
      return error.code?.startsWith('ERR_TLS') || error.code?.includes('CERT') ? 'tls_failed' : 'network_error';
  }
}
