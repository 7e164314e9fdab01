/**
 * oidc-provider's own list of special-use addresses (lib/helpers/fetch_request.js, exported
 * there though not typed): the test fetch refuses exactly what its SSRF guard refuses.
 */
declare module 'oidc-provider/lib/helpers/fetch_request.js' {
  /** Loopback, private, link-local, documentation, NAT64, 6to4, multicast, reserved... (IPv4 and IPv6). */
  export function isSpecialUseIP(address: string): boolean;
}
