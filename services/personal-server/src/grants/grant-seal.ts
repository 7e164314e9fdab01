import { timingSafeEqual } from 'node:crypto';

import { type DataKey, encodeContext } from '@context-gateway/crypto';

import type { GrantRow } from './grants.repository.js';

/** What an active grant says: who may read which types of which connection (scopes, types sorted). */
export type SealedGrantFields = Omit<GrantRow, 'state' | 'integration'>;

/**
 * A grant's sealed fields as read back from its row, where `scopes` and `types` may be NULL
 * (nullable columns, written so only by SQL). Sealed fields never hold null, so such a row
 * never matches; its JSON is what it always was (`null` in those places).
 */
export type ReadGrantFields = Omit<SealedGrantFields, 'scopes' | 'types'> & {
  scopes: string[] | null;
  types: string[] | null;
};

const SEAL_FORMAT = 'ps.grant.v1';

/**
 * The seal of an active grant: a keyed digest (DataKey.digest, HMAC-SHA-256 under a subkey
 * of the connection's data key) of every field that decides what the grant lets an app
 * read, and of the nonce of the signed consent it was registered with. Only this service
 * can make one, and only while the connection's key exists (it is wrapped by the shard's
 * KEK, never stored in the database). The query path honours an
 * active grant only with a seal that matches its row: a grant inserted in SQL, one whose
 * scopes or types were widened, one moved to another app, org or connection, or a revoked
 * one set back to active (its seal is cleared on revocation) is refused.
 */
export function sealGrant(key: DataKey, grant: SealedGrantFields): Buffer {
  return key.digest(...sealInput(grant));
}

/** A seal found to match: the sealed fields (arrays copied) and the seal, as they were. */
interface Matched {
  fields: readonly unknown[];
  seal: Buffer;
}

/**
 * Seals already found to match, per data key object and grant id. The query path checks the
 * seal of every request (an HMAC, ~3 % of a shard's CPU under `pnpm bench:query`); a grant
 * row that reads back exactly as when its seal last matched — the same sealed fields, the
 * same seal bytes, under the same key object — is the same input to the same function, so
 * the answer is remembered rather than recomputed. Anything else (a field changed in SQL, a
 * new seal, a key reopened after its cache TTL, a shredded key) computes it again; only
 * matches are remembered. Keyed weakly by the key: when the key cache lets go of a key, its
 * memory goes with it.
 */
const matched = new WeakMap<DataKey, Map<string, Matched>>();
/** Grants remembered per key (a connection's key seals one grant per application). */
export const MAX_MATCHED_PER_KEY = 64;

/** True when `seal` is this grant's seal under `key` (constant-time comparison). */
export function grantSealMatches(key: DataKey, grant: ReadGrantFields, seal: Buffer | null): boolean {
  if (!seal) return false;
  const fields = sealedFields(grant);
  let known = matched.get(key);
  const hit = known?.get(grant.id);
  if (
    hit !== undefined &&
    !key.destroyed &&
    sameSealedFields(hit.fields, fields) &&
    hit.seal.length === seal.length &&
    timingSafeEqual(hit.seal, seal)
  )
    return true;
  if (!key.digestMatches(...sealInput(grant), seal)) return false;
  if (!known) matched.set(key, (known = new Map<string, Matched>()));
  if (known.size >= MAX_MATCHED_PER_KEY && !known.has(grant.id)) {
    // Maps iterate in insertion order: forget the oldest match only, so a key with more
    // active grants than this still answers most of its queries from memory.
    const oldest = known.keys().next();
    if (!oldest.done) known.delete(oldest.value);
  }
  known.set(grant.id, {
    fields: fields.map((field): unknown => (Array.isArray(field) ? [...(field as unknown[])] : field)),
    seal: Buffer.from(seal),
  });
  return true;
}

/**
 * Whether two lists of sealed fields have the same JSON (what the seal digests), compared
 * value by value instead of serializing the row's fields: the memo hit of every query was a
 * `JSON.stringify` of the grant's eight fields; the whole seal check measured 1.26 µs → 0.27
 * (min, 1.59 → 0.39 median; docs/perf/README.md, "The shard's query", seventh session).
 * A field is a string (JSON tells two apart exactly when `===` does), null, or an array of
 * those, as a text[] column holds; anything else (never in a grant row) counts as different,
 * so the seal is computed again: this may say "different" where the JSON is equal, never the
 * reverse. Nothing is compared by reference: the memo copies the arrays one level deep, so a
 * value deeper than that, or any object, could be the caller's own and changed in place.
 */
export function sameSealedFields(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (Array.isArray(x)) {
      if (!Array.isArray(y) || !sameTextArray(x, y)) return false;
    } else if (!sameText(x, y)) return false;
  }
  return true;
}

/** A text[] column's values: the same length, and the same string or null at each index. */
function sameTextArray(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!sameText(a[i], b[i])) return false;
  return true;
}

/** The same string, or both null; any other value (an object, a nested array) is "different". */
function sameText(x: unknown, y: unknown): boolean {
  return x === y && (typeof x === 'string' || x === null);
}

function sealInput(grant: ReadGrantFields): [Buffer, Buffer] {
  return [
    Buffer.from(JSON.stringify(sealedFields(grant)), 'utf8'),
    encodeContext({ purpose: SEAL_FORMAT, grant: grant.id, connection: grant.connectionId }),
  ];
}

/** The sealed fields in their fixed order (JSON arrays of strings serialize one way). */
export function sealedFields(grant: ReadGrantFields): unknown[] {
  return [
    grant.id,
    grant.connectionId,
    grant.orgId,
    grant.applicationId,
    grant.userId,
    grant.scopes,
    grant.types,
    grant.consentNonce,
  ];
}
