import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP } from 'node:net';
import { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';

import { errors, type KoaContextWithOIDC } from 'oidc-provider';

/**
 * Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, as the MCP
 * authorization specification uses them): an MCP client's client_id is an https URL whose
 * document describes it. oidc-provider fetches and validates the document
 * (`features.clientIdMetadataDocument`); this file decides which URLs may be fetched at all,
 * which documents are acceptable, how a refusal is named, and — for tests only — how a
 * document on this machine is reached.
 */

/** What the operator and the organizations allow (env + Application rows). */
export interface MetadataDocumentPolicy {
  /** Hosts the operator allows metadata URLs on (OAUTH_CIMD_ALLOWED_HOSTS); undefined: any public host. */
  allowedHosts: string[] | undefined;
  /** Whether some organization allowed this URL (an active application with it). */
  allowedByAnOrganization: (url: string) => Promise<boolean>;
  /** Test only (OAUTH_CIMD_TEST_CA_FILE / OAUTH_CIMD_ALLOW_LOOPBACK): see testDispatcher. */
  test?: { caFile: string | undefined; allowLoopback: boolean };
}

/** Grant types a metadata-URL client may use: acting for a person only, never as itself. */
const PERSON_GRANTS = new Set(['authorization_code', 'refresh_token']);

/** A client_id that names a metadata document (every registered application's id is `cg_app_...`). */
function isMetadataUrlClientId(clientId: string | undefined): boolean {
  return clientId?.startsWith('https://') ?? false;
}

/** The `features.clientIdMetadataDocument` configuration. */
export function clientIdMetadataDocumentFeature(policy: MetadataDocumentPolicy) {
  return {
    enabled: true,
    // oidc-provider's acknowledgement of the draft it implements (draft-02).
    ack: 'draft-02',
    /**
     * Nothing is fetched unless an organization allowed the exact URL (and the operator's host
     * list, when set, names its host): an unknown URL costs no outgoing request, so the
     * authorization endpoint cannot be used to make this server fetch arbitrary URLs.
     */
    async allowFetch(_ctx: KoaContextWithOIDC, clientId: string): Promise<boolean> {
      const url = URL.parse(clientId);
      if (!url || url.protocol !== 'https:') return false;
      if (policy.allowedHosts && !policy.allowedHosts.includes(url.hostname.toLowerCase())) return false;
      // Exactly as stored: the admin API accepts a URL only in its normalized form.
      return policy.allowedByAnOrganization(clientId);
    },
    /**
     * A metadata-URL client acts for a person only: client credentials or token exchange would
     * have it act as an application of no particular organization.
     */
    allowClient(_ctx: KoaContextWithOIDC, client: { grantTypes?: readonly string[] }): Promise<boolean> {
      const extra = (client.grantTypes ?? []).filter((g) => !PERSON_GRANTS.has(g));
      if (extra.length > 0) {
        throw new errors.InvalidClientMetadata(
          `client_metadata_invalid: a metadata document may only use ${[...PERSON_GRANTS].join(' and ')}`,
        );
      }
      return Promise.resolve(true);
    },
    // Documents are cached as their Cache-Control says, between 5 minutes and a day.
    cacheDuration: { min: 300, max: 86_400 },
  };
}

/**
 * Our own client metadata (org_id, application_id, capabilities, idp_client_id) comes from the
 * Application row only. A metadata document is written by whoever controls its URL: one that
 * names any of them is refused, so no document can claim an organization or capabilities.
 */
export function refuseOwnMetadataInDocument(clientId: unknown, key: string, value: unknown): void {
  if (typeof clientId === 'string' && isMetadataUrlClientId(clientId) && value !== undefined) {
    throw new errors.InvalidClientMetadata(`client_metadata_invalid: ${key} may not be set by a metadata document`);
  }
}

/** The stable codes of a metadata document that could not be used, for people and for tests. */
export type MetadataDocumentErrorCode =
  | 'client_metadata_not_allowed'
  | 'client_metadata_timeout'
  | 'client_metadata_too_large'
  | 'client_metadata_private_address'
  | 'client_metadata_mismatch'
  | 'client_metadata_invalid'
  | 'client_metadata_unavailable';

/**
 * Names why oidc-provider refused a metadata document, from the error it raised and its
 * causes (its own messages: fetch_request.js, fetch_body_check.js,
 * client_id_metadata_document.js). undefined: not a metadata document error.
 */
export function metadataDocumentErrorCode(error: unknown): MetadataDocumentErrorCode | undefined {
  const chain: { name?: string; message?: string; error_description?: string }[] = [];
  for (let e = error as { cause?: unknown } | undefined, i = 0; e && i < 6; e = e.cause as typeof e, i += 1) {
    chain.push(e as (typeof chain)[number]);
  }
  const top = chain[0];
  const description = `${top?.error_description ?? ''} ${top?.message ?? ''}`;
  if (!description.includes('metadata document') && !description.includes('client_metadata_')) return undefined;
  const text = chain.map((e) => `${e.name ?? ''}: ${e.message ?? ''}`).join(' | ');
  if (description.includes('fetch not allowed')) return 'client_metadata_not_allowed';
  if (description.includes('does not match')) return 'client_metadata_mismatch';
  if (/TimeoutError|aborted due to timeout/i.test(text)) return 'client_metadata_timeout';
  // Over the limit while streaming, oidc-provider cancels the body its own loop still holds:
  // that TypeError (a locked stream) is the too-large refusal too.
  if (text.includes('response too large') || text.includes('ReadableStream is locked')) {
    return 'client_metadata_too_large';
  }
  if (text.includes('special-use IP')) return 'client_metadata_private_address';
  if (description.includes('fetch failed')) return 'client_metadata_unavailable';
  return 'client_metadata_invalid';
}

/** Loopback, private, link-local, shared, multicast and reserved ranges: never a public metadata host. */
function specialUseAddresses(): BlockList {
  const list = new BlockList();
  for (const [net, prefix] of [
    ['0.0.0.0', 8],
    ['10.0.0.0', 8],
    ['100.64.0.0', 10],
    ['127.0.0.0', 8],
    ['169.254.0.0', 16],
    ['172.16.0.0', 12],
    ['192.0.0.0', 24],
    ['192.168.0.0', 16],
    ['198.18.0.0', 15],
    ['224.0.0.0', 3],
  ] as const)
    list.addSubnet(net, prefix, 'ipv4');
  for (const [net, prefix] of [
    ['::', 128],
    ['::1', 128],
    ['fc00::', 7],
    ['fe80::', 10],
  ] as const)
    list.addSubnet(net, prefix, 'ipv6');
  return list;
}

/** The loopback addresses a test's document server listens on; the rest of 127.0.0.0/8 stays refused. */
const LOOPBACK = new BlockList();
LOOPBACK.addAddress('127.0.0.1', 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

type FetchOptions = RequestInit & { dispatcher?: unknown };

/**
 * The `fetch` hook oidc-provider makes its outgoing requests with. In production it is plain
 * fetch: oidc-provider has already set its own dispatcher, which closes any connection to a
 * special-use address (the SSRF guard) and a 2.5 s timeout; the document is at most 5 KiB.
 *
 * Tests only (refused when NODE_ENV=production, env.ts): a request through node:https that
 * also trusts the test's own CA (documents served over https on 127.0.0.1) and, with
 * allowLoopback, lets connections to 127.0.0.1 through; every other special-use address is
 * refused with oidc-provider's own wording, so the refusal is named the same. (Under Jest's
 * VM oidc-provider cannot find fetch's dispatcher to guard, so the tests need a guard of
 * their own anyway.) The timeout signal and the size limit stay oidc-provider's.
 */
export function metadataFetch(
  policy: MetadataDocumentPolicy,
): (url: string, options: FetchOptions) => Promise<Response> {
  const test = policy.test;
  if (!test?.caFile && !test?.allowLoopback) return (url, options) => globalThis.fetch(url, options);
  const ca = test.caFile ? [...rootCertificates, readFileSync(test.caFile, 'utf8')] : undefined;
  const special = specialUseAddresses();
  const refused = (address: string | undefined) => {
    if (!address) return false;
    const plain = address.replace(/^::ffff:/, '');
    const family = isIP(plain) === 6 ? 'ipv6' : 'ipv4';
    if (test.allowLoopback && LOOPBACK.check(plain, family)) return false;
    return special.check(plain, family);
  };
  return (url, options) =>
    new Promise<Response>((resolve, reject) => {
      const req = httpsRequest(
        url,
        {
          method: 'GET',
          headers: Object.fromEntries(new Headers(options.headers).entries()),
          ...(ca ? { ca } : {}),
          agent: false,
        },
        (res) => {
          const headers = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
          }
          resolve(new Response(Readable.toWeb(res) as ReadableStream, { status: res.statusCode ?? 502, headers }));
        },
      );
      // oidc-provider's 2.5 s timeout (its signal may come from another realm under Jest: listened to, not passed).
      const signal = options.signal;
      signal?.addEventListener('abort', () => req.destroy(signal.reason as Error), { once: true });
      req.on('socket', (socket) =>
        socket.once('connect', () => {
          if (refused(socket.remoteAddress)) req.destroy(new Error('hostname resolves to a special-use IP address'));
        }),
      );
      req.on('error', reject);
      req.end();
    });
}
