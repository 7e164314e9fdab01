import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

import {
  bareHost,
  checkOutboundUrl,
  guardedLookup,
  outboundAddressAllowed,
  type OutboundPolicy,
} from '@context-gateway/service-kit';
import ipaddr from 'ipaddr.js';

/** Where a webhook may be delivered (the shared SSRF guard's policy). */
export type EndpointPolicy = OutboundPolicy;

/**
 * Checks an endpoint URL when it is configured: an absolute http(s) URL without credentials
 * or fragment, https unless the operator allows http. Addresses are checked at each delivery
 * (a name can change what it points at), by `guardedLookup`.
 */
export function checkEndpointUrl(raw: string, policy: EndpointPolicy): URL {
  return checkOutboundUrl(raw, policy, 'The webhook URL');
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
  if (ipaddr.isValid(host) && !outboundAddressAllowed(host, options.policy))
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
