import { lookup as dnsLookup } from 'node:dns';
import type { LookupFunction } from 'node:net';

import { AppError } from '@context-gateway/errors';
import ipaddr from 'ipaddr.js';

/**
 * Where a service may send a request to a URL someone configured (a webhook endpoint, an
 * org's remote MCP server): the SSRF guard both share.
 */
export interface OutboundPolicy {
  /** http:// URLs (development only). */
  allowHttp: boolean;
  /** Loopback, private, link-local and other non-public addresses (development only). */
  allowPrivateNetworks: boolean;
}

/** The URL's host without IPv6 brackets. */
export function bareHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

/** Only unicast addresses on the public internet, unless the operator allows private networks. */
export function outboundAddressAllowed(address: string, policy: OutboundPolicy): boolean {
  if (policy.allowPrivateNetworks) return true;
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress())
    parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  return parsed.range() === 'unicast';
}

/**
 * Checks a URL when it is configured: an absolute http(s) URL without credentials or
 * fragment, https unless the operator allows http, and no literal non-public address.
 * `what` names it in the error ("The webhook URL"). Names are checked again at every
 * connection by `guardedLookup` (a name can change what it points at).
 */
export function checkOutboundUrl(raw: string, policy: OutboundPolicy, what: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new AppError('validation_failed', `${what} is not an absolute URL`, [
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
      `${what} ${problems.join(', ')}`,
      problems.map((message) => ({ path: 'url', message })),
    );
  const host = bareHost(url);
  if (ipaddr.isValid(host) && !outboundAddressAllowed(host, policy))
    throw new AppError('validation_failed', `${what} points at a non-public address`, [
      { path: 'url', message: 'must resolve to a public address' },
    ]);
  return url;
}

/**
 * A DNS lookup for an outbound socket that refuses any answer holding a non-public address.
 * The socket connects to exactly what was checked here, so a name that resolves to a public
 * address for a check and a private one for the connection (DNS rebinding) cannot slip through.
 */
export function guardedLookup(policy: OutboundPolicy): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, '', 0);
      const [first] = addresses;
      if (!first || addresses.some((a) => !outboundAddressAllowed(a.address, policy)))
        return callback(Object.assign(new Error('address refused'), { code: 'EADDRREFUSED' }), '', 0);
      if (options.all) return callback(null, addresses);
      return callback(null, first.address, first.family);
    });
  };
}
