import { generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

import type { Clock } from '@context-gateway/clock';
import { type EnvelopeCipher, WrappedKey } from '@context-gateway/crypto';
import type { JWK } from 'oidc-provider';

import type { Tx } from '../database/database.module.js';
import type { OAuthKey } from '../generated/prisma/client.js';
import type { OAuthKeysRepository } from './oauth-keys.repository.js';

/** Algorithms the authorization server signs with: ES256 for access tokens, RS256 (OIDC's mandatory default) for ID tokens. */
const SIGNING_ALGS = ['ES256', 'RS256'] as const;

/** What the provider is built from: private signing JWKs (newest first) and cookie keys (newest first). */
export interface ProviderKeys {
  jwks: JWK[];
  cookieKeys: string[];
}

const generateKeyPairAsync = promisify(generateKeyPair);

/** One key of a generation, generated and sealed, ready to insert. */
type SealedKey = Parameters<OAuthKeysRepository['create']>[0];

/** The wrap is bound to the key's id and use: a sealed key copied onto another row does not open. */
function sealContext(kid: string, use: string) {
  return { service: 'identity', purpose: 'oauth_key', kid, use };
}

/**
 * The authorization server's keys, stored in identity's schema with the private half
 * sealed under the keyring (envelope encryption): a database dump alone yields no key
 * that can sign a token. Rotation adds a new generation (one key per algorithm and a new
 * cookie key) that signs from the next start on; the previous generation stays published
 * so tokens it signed keep verifying, and older ones are retired.
 */
export class OAuthKeyStore {
  /**
   * `activationDelayMs`: how long a new key is only published before it is used. Every
   * verifier (the gateway's JWKS cache, the other identity replicas' cookie checks) has
   * fetched it by then, so a rotation never produces a token or cookie nobody can check.
   */
  constructor(
    private readonly keys: OAuthKeysRepository,
    private readonly cipher: EnvelopeCipher,
    private readonly clock: Clock,
    private readonly activationDelayMs = 0,
  ) {}

  /** The live keys, creating the first generation when there is none (first start). */
  async load(): Promise<ProviderKeys> {
    let rows = await this.keys.live('sig');
    if (!SIGNING_ALGS.every((alg) => rows.some((row) => row.alg === alg))) {
      // Generated and sealed before the transaction: an RSA key takes a while on a busy
      // machine, and the transaction (holding the lock) must only insert.
      const generation = await this.#generate();
      await this.keys.locked(async (tx) => {
        const live = await this.keys.live('sig', tx);
        // Another replica may have created them while this one waited for the lock.
        if (!SIGNING_ALGS.every((alg) => live.some((row) => row.alg === alg))) await this.#insert(generation, tx);
      });
      rows = await this.keys.live('sig');
    }
    const cookies = this.#signersFirst(await this.keys.live('cookie'));
    return {
      jwks: await Promise.all(
        this.#signersFirst(rows).map(async (row) => JSON.parse((await this.#open(row)).toString('utf8')) as JWK),
      ),
      cookieKeys: await Promise.all(cookies.map(async (row) => (await this.#open(row)).toString('base64url'))),
    };
  }

  /**
   * Live keys (newest first) reordered so the one that signs comes first for each
   * algorithm: the newest key past its activation delay, or, when none is, the oldest
   * (a first start, or a rotation not yet active). The provider signs with the first key
   * of an algorithm and verifies with all.
   */
  #signersFirst(rows: OAuthKey[]): OAuthKey[] {
    const activeBefore = this.clock.now() - this.activationDelayMs;
    const first = new Set<OAuthKey>();
    for (const alg of new Set(rows.map((row) => row.alg))) {
      const ofAlg = rows.filter((row) => row.alg === alg); // newest first
      const signer = ofAlg.find((row) => row.createdAt.getTime() <= activeBefore) ?? ofAlg.at(-1);
      if (signer) first.add(signer);
    }
    return [...first, ...rows.filter((row) => !first.has(row))];
  }

  /**
   * Adds a generation and retires every key older than the previous one. Running
   * identity processes publish the new keys at their next key reload and sign with them
   * once the activation delay has passed; the previous generation stays published so
   * what it signed keeps verifying.
   */
  async rotate(): Promise<{ created: string[]; retired: string[] }> {
    const generation = await this.#generate();
    return this.keys.locked(async (tx) => {
      const before = [...(await this.keys.live('sig', tx)), ...(await this.keys.live('cookie', tx))];
      const created = await this.#insert(generation, tx);
      // Keep the newest key of each (use, alg) from before: the generation still in use.
      const kept = new Set<string>();
      const retired: string[] = [];
      for (const row of before) {
        const slot = `${row.use}:${row.alg}`;
        if (kept.has(slot)) retired.push(row.kid);
        else kept.add(slot);
      }
      await this.keys.retire(retired, this.clock.date(), tx);
      return { created, retired };
    });
  }

  /** A new generation (one signing key per algorithm and a cookie key), sealed, not yet stored. */
  async #generate(): Promise<SealedKey[]> {
    const now = this.clock.date();
    const generation: SealedKey[] = [];
    for (const alg of SIGNING_ALGS) {
      const kid = randomBytes(12).toString('base64url');
      const { privateKey, publicKey } =
        alg === 'ES256'
          ? await generateKeyPairAsync('ec', { namedCurve: 'P-256' })
          : await generateKeyPairAsync('rsa', { modulusLength: 2048 });
      const common = { kid, alg, use: 'sig' };
      const privateJwk = { ...privateKey.export({ format: 'jwk' }), ...common };
      const publicJwk = { ...publicKey.export({ format: 'jwk' }), ...common };
      generation.push({
        kid,
        use: 'sig',
        alg,
        publicJwk,
        ...(await this.#seal(kid, 'sig', Buffer.from(JSON.stringify(privateJwk)))),
        createdAt: now,
      });
    }
    const cookieKid = randomBytes(12).toString('base64url');
    generation.push({
      kid: cookieKid,
      use: 'cookie',
      alg: 'HS256',
      publicJwk: null,
      ...(await this.#seal(cookieKid, 'cookie', randomBytes(32))),
      createdAt: now,
    });
    return generation;
  }

  async #insert(generation: SealedKey[], tx: Tx): Promise<string[]> {
    for (const key of generation) await this.keys.create(key, tx);
    return generation.map((key) => key.kid);
  }

  async #seal(kid: string, use: string, secret: Buffer) {
    const context = sealContext(kid, use);
    const { key, wrapped } = await this.cipher.generateDataKey(context);
    try {
      return {
        wrappedDataKey: new Uint8Array(wrapped.encode()),
        ciphertext: new Uint8Array(key.encrypt(secret, context)),
      };
    } finally {
      key.destroy();
      secret.fill(0);
    }
  }

  async #open(row: OAuthKey): Promise<Buffer> {
    const context = sealContext(row.kid, row.use);
    const key = await this.cipher.openDataKey(WrappedKey.decode(row.wrappedDataKey), context);
    return key.decrypt(row.ciphertext, context);
  }
}
