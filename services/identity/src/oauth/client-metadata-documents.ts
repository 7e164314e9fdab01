import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { BlockList } from 'node:net';
import { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';

import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { isSpecialUseIP } from 'oidc-provider/lib/helpers/fetch_request.js';

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

/** Whether the operator's host list (when set) names this https URL's host. */
function onAllowedHost(policy: MetadataDocumentPolicy, clientId: string): boolean {
  const url = URL.parse(clientId);
  if (!url || url.protocol !== 'https:') return false;
  return !policy.allowedHosts || policy.allowedHosts.includes(url.hostname.toLowerCase());
}

/** Ends a lookup with a coded message metadataDocumentErrorCode names as is. */
const invalidDocument = (why: string) => new errors.InvalidClientMetadata(`client_metadata_invalid: ${why}`);

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
      if (!onAllowedHost(policy, clientId)) return false;
      // Exactly as stored: the admin API accepts a URL only in its normalized form.
      return policy.allowedByAnOrganization(clientId);
    },
    /**
     * Every lookup of a metadata-URL client, a cached document's too (allowFetch runs only
     * before a fetch): a URL every organization stopped allowing, or a host the operator took
     * off the list, is refused at once rather than once the cache ends (up to a day).
     *
     * The client acts for a person only (client credentials or token exchange would have it
     * act as an application of no particular organization), is public (PKCE, `none`), and
     * names no other URL for us to fetch: `jwks_uri` and `sector_identifier_uri` would be
     * outgoing requests wherever the document says, past allowFetch and the host list.
     * (sectorIdentifierUriValidate keeps oidc-provider from fetching the sector URI before
     * this runs.)
     */
    async allowClient(
      _ctx: KoaContextWithOIDC,
      client: {
        clientId: string;
        grantTypes?: readonly string[];
        clientAuthMethod?: string;
        jwksUri?: string;
        sectorIdentifierUri?: string;
      },
    ): Promise<boolean> {
      const extra = (client.grantTypes ?? []).filter((g) => !PERSON_GRANTS.has(g));
      if (extra.length > 0)
        throw invalidDocument(`a metadata document may only use ${[...PERSON_GRANTS].join(' and ')}`);
      if (client.clientAuthMethod !== 'none') throw invalidDocument('token_endpoint_auth_method must be none');
      if (client.jwksUri !== undefined) throw invalidDocument('jwks_uri is not accepted');
      if (client.sectorIdentifierUri !== undefined) throw invalidDocument('sector_identifier_uri is not accepted');
      if (!onAllowedHost(policy, client.clientId) || !(await policy.allowedByAnOrganization(client.clientId))) {
        throw new errors.InvalidClient('client_metadata_not_allowed: no organization allows this client');
      }
      return true;
    },
    // Documents are cached as their Cache-Control says, between 5 minutes and a day.
    cacheDuration: { min: 300, max: 86_400 },
  };
}

/**
 * `sectorIdentifierUriValidate`: oidc-provider fetches a client's sector_identifier_uri while
 * building it, before allowClient can refuse it, and again on every lookup. A metadata-URL
 * client's never is (allowClient then refuses the document); a registered application's is
 * set by an operator.
 */
export function sectorIdentifierUriValidate(client: { clientId: string }): boolean {
  return !isMetadataUrlClientId(client.clientId);
}

/**
 * `fetchResponseBodyLimits`: oidc-provider's defaults leave jwks_uri and sector_identifier_uri
 * unlimited. Only registered applications can have them (their operator sets them); a JWK Set
 * of a few keys is a few KiB, a sector document a list of URLs.
 */
export const FETCH_RESPONSE_BODY_LIMITS = {
  'client_id metadata document': 5 * 1024,
  jwks_uri: 64 * 1024,
  sector_identifier_uri: 16 * 1024,
};

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

const CODES: ReadonlySet<string> = new Set<MetadataDocumentErrorCode>([
  'client_metadata_not_allowed',
  'client_metadata_timeout',
  'client_metadata_too_large',
  'client_metadata_private_address',
  'client_metadata_mismatch',
  'client_metadata_invalid',
  'client_metadata_unavailable',
]);

/**
 * Names why oidc-provider refused a metadata document, from the error it raised and its
 * causes (its own messages: fetch_request.js, fetch_body_check.js,
 * client_id_metadata_document.js; ours start with the code). `clientId`: the client being
 * looked up, when known — any invalid_client_metadata while resolving a URL client (a schema
 * rule of oidc-provider's, e.g. "client_secret is mandatory property" for a document without
 * token_endpoint_auth_method) is its document's fault. undefined: not a metadata document error.
 */
export function metadataDocumentErrorCode(error: unknown, clientId?: string): MetadataDocumentErrorCode | undefined {
  const chain: { name?: string; message?: string; error_description?: string }[] = [];
  for (let e = error as { cause?: unknown } | undefined, i = 0; e && i < 6; e = e.cause as typeof e, i += 1) {
    chain.push(e as (typeof chain)[number]);
  }
  const top = chain[0];
  const description = `${top?.error_description ?? ''} ${top?.message ?? ''}`;
  const coded = /^\s*(client_metadata_[a-z_]+):/.exec(description)?.[1];
  if (coded && CODES.has(coded)) return coded as MetadataDocumentErrorCode;
  const documentError = description.includes('metadata document');
  if (!documentError) {
    const schemaError = top?.name === 'InvalidClientMetadata' || top?.message === 'invalid_client_metadata';
    return schemaError && isMetadataUrlClientId(clientId) ? 'client_metadata_invalid' : undefined;
  }
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

/** The loopback addresses a test's document server listens on; the rest of 127.0.0.0/8 stays refused. */
const LOOPBACK = new BlockList();
LOOPBACK.addAddress('127.0.0.1', 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

type FetchOptions = RequestInit & { dispatcher?: unknown };

/**
 * The `fetch` hook oidc-provider makes its outgoing requests with. In production it is plain
 * fetch: oidc-provider has already set its own dispatcher, which closes any connection to a
 * special-use address (the SSRF guard) and a 2.5 s timeout; the document is at most 5 KiB.
 * Should oidc-provider fail to make that dispatcher (it only warns), nothing is fetched:
 * an unguarded request could reach any internal address.
 *
 * Tests only (accepted only when NODE_ENV=test, env.ts): a request through node:https that
 * also trusts the test's own CA (documents served over https on 127.0.0.1) and, with
 * allowLoopback, lets connections to 127.0.0.1 and ::1 through; every other special-use
 * address is refused by oidc-provider's own list (isSpecialUseIP) and wording, so the refusal
 * is the guard's and named the same. (Under Jest's VM oidc-provider cannot find fetch's
 * dispatcher to guard, so the tests need a guard of their own anyway; the production path is
 * tested in plain Node, oauth-cimd-ssrf.int-spec.ts.) The timeout signal and the size limit
 * stay oidc-provider's.
 */
export function metadataFetch(
  policy: MetadataDocumentPolicy,
): (url: string, options: FetchOptions) => Promise<Response> {
  const test = policy.test;
  if (!test?.caFile && !test?.allowLoopback) {
    return (url, options) =>
      options.dispatcher
        ? globalThis.fetch(url, options)
        : Promise.reject(new Error('no SSRF guard: oidc-provider could not set its dispatcher'));
  }
  const ca = test.caFile ? [...rootCertificates, readFileSync(test.caFile, 'utf8')] : undefined;
  const refused = (address: string | undefined) => {
    if (!address) return false;
    const plain = address.replace(/^::ffff:(?=\d+\.)/, '');
    if (test.allowLoopback && LOOPBACK.check(plain, plain.includes(':') ? 'ipv6' : 'ipv4')) return false;
    return isSpecialUseIP(plain);
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
