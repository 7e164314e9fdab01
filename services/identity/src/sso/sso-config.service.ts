import { Clock } from '@context-gateway/clock';
import { EnvelopeCipher, openKeyProvider, WrappedKey } from '@context-gateway/crypto';
import { AppError } from '@context-gateway/errors';
import { SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import type * as client from 'openid-client';

import { type Env, oauthKeyringPath } from '../env.js';
import { type SsoConfigRow, SsoConfigsRepository } from './sso.repository.js';
import { SsoIssuers } from './sso-issuers.js';

/** An email domain as people write it: lower-case labels, a dot, no scheme or @. */
const DOMAIN = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
/** Claim names are JSON member names; keep them to what IdPs actually use. */
const CLAIM_NAME = /^[A-Za-z0-9_:.\-/]{1,100}$/;

export interface SsoSettingsInput {
  orgId: string;
  issuer: string;
  clientId: string;
  /** Empty keeps the stored secret. */
  clientSecret: string;
  emailDomains: string[];
  requiredClaims: Record<string, string>;
  ssoRequired: boolean;
}

/** The seal binds the client secret to its organization: a ciphertext copied onto another org's row does not open. */
const sealContext = (orgId: string) => ({ service: 'identity', purpose: 'sso_client_secret', org: orgId });

/**
 * An organization's IdP settings: validated (the issuer's discovery must succeed), the
 * client secret sealed under identity's keyring (envelope encryption, as the authorization
 * server's keys are), and the openid-client configuration for sign-ins.
 */
@Injectable()
export class SsoConfigService implements OnModuleDestroy {
  readonly #issuers: SsoIssuers;
  #cipher: Promise<EnvelopeCipher> | undefined;
  #provider: { close(): void } | undefined;

  constructor(
    private readonly configs: SsoConfigsRepository,
    @Inject(SERVICE_ENV) private readonly env: Env,
    clock: Clock,
  ) {
    this.#issuers = new SsoIssuers({
      allowInsecureLocalhost: env.SSO_ALLOW_INSECURE_LOCALHOST,
      now: () => clock.now(),
    });
  }

  async configure(input: SsoSettingsInput): Promise<SsoConfigRow> {
    const emailDomains = normalizeDomains(input.emailDomains);
    const requiredClaims = checkClaims(input.requiredClaims);
    if (emailDomains.length === 0 && Object.keys(requiredClaims).length === 0) {
      // An IdP vouches for everyone it knows (a shared one: the whole world); membership needs a rule.
      throw new AppError('validation_failed', 'Say who is a member: email domains, required claims, or both', [
        { path: 'emailDomains', message: 'at least one email domain or required claim' },
      ]);
    }
    const existing = await this.configs.find(input.orgId);
    const secret = input.clientSecret || (existing ? await this.#openSecret(existing) : '');
    if (!secret) {
      throw new AppError('validation_failed', 'The client secret is required', [
        { path: 'clientSecret', message: 'required the first time' },
      ]);
    }
    // Discovery must succeed now, not at someone's first sign-in.
    const issuer = (await this.#issuers.discover(input.issuer, input.clientId, secret)).serverMetadata().issuer;
    const sealed = await this.#seal(input.orgId, secret);
    return this.configs.transaction(async (tx) => {
      // One organization per domain: an email address must name exactly one organization.
      const claimed = (await this.configs.findByEmailDomains(emailDomains, tx)).filter((c) => c.orgId !== input.orgId);
      if (claimed.length > 0) {
        const taken = emailDomains.filter((d) => claimed.some((c) => c.emailDomains.includes(d)));
        throw new AppError('conflict', `Another organization already signs in ${taken.join(', ')}`);
      }
      try {
        return await this.configs.upsert(
          {
            orgId: input.orgId,
            issuer,
            clientId: input.clientId,
            ...sealed,
            emailDomains,
            requiredClaims,
            ssoRequired: input.ssoRequired,
          },
          tx,
        );
      } catch (error) {
        if ((error as { code?: string }).code === 'P2003') throw new AppError('not_found', 'No such organization');
        throw error;
      }
    });
  }

  async get(orgId: string): Promise<SsoConfigRow> {
    const row = await this.configs.find(orgId);
    if (!row) throw new AppError('not_found', 'This organization has no SSO configured');
    return row;
  }

  async delete(orgId: string): Promise<void> {
    if (!(await this.configs.delete(orgId))) throw new AppError('not_found', 'This organization has no SSO configured');
  }

  /** The organization a person means: by the domain of their email address, or by its slug. */
  async lookup(organization: string): Promise<{ row: SsoConfigRow; email?: string }> {
    const value = organization.trim().toLowerCase();
    const at = value.lastIndexOf('@');
    const row =
      at >= 0
        ? (await this.configs.findByEmailDomains([value.slice(at + 1)]))[0]
        : await this.configs.findBySlug(value);
    if (!row) throw new AppError('sso_not_configured', 'No organization signs in people with this address or name');
    return at >= 0 ? { row, email: value } : { row };
  }

  /** openid-client's view of the organization's IdP (discovered, cached per revision). */
  client(row: SsoConfigRow): Promise<client.Configuration> {
    return this.#issuers.forOrganization(row.orgId, row.updatedAt, {
      issuer: row.issuer,
      clientId: row.clientId,
      clientSecret: () => this.#openSecret(row),
    });
  }

  /**
   * identity's keyring, opened on first use: the authorization server (src/oauth) creates
   * it at boot when it is missing, so here a missing file is an error, never a new key.
   */
  #keyring(): Promise<EnvelopeCipher> {
    this.#cipher ??= openKeyProvider(this.env, { localPath: oauthKeyringPath(this.env), createIfMissing: false }).then(
      (provider) => {
        this.#provider = provider;
        return new EnvelopeCipher(provider);
      },
    );
    return this.#cipher;
  }

  onModuleDestroy(): void {
    this.#provider?.close();
  }

  async #seal(orgId: string, secret: string) {
    const context = sealContext(orgId);
    const { key, wrapped } = await (await this.#keyring()).generateDataKey(context);
    try {
      return {
        wrappedDataKey: new Uint8Array(wrapped.encode()),
        secretCiphertext: new Uint8Array(key.encrypt(Buffer.from(secret, 'utf8'), context)),
      };
    } finally {
      key.destroy();
    }
  }

  async #openSecret(row: SsoConfigRow): Promise<string> {
    const context = sealContext(row.orgId);
    const key = await (await this.#keyring()).openDataKey(WrappedKey.decode(row.wrappedDataKey), context);
    return key.decrypt(row.secretCiphertext, context).toString('utf8');
  }
}

function normalizeDomains(domains: string[]): string[] {
  const out = [...new Set(domains.map((d) => d.trim().toLowerCase()))];
  const bad = out.findIndex((d) => !DOMAIN.test(d));
  if (bad >= 0) {
    throw new AppError('validation_failed', 'An email domain is not valid', [
      { path: `emailDomains.${bad}`, message: 'must be a domain name such as example.com' },
    ]);
  }
  return out;
}

function checkClaims(claims: Record<string, string>): Record<string, string> {
  for (const name of Object.keys(claims)) {
    if (!CLAIM_NAME.test(name) || ['__proto__', 'constructor', 'prototype'].includes(name)) {
      throw new AppError('validation_failed', 'A required claim name is not valid', [
        { path: 'requiredClaims', message: `"${name.slice(0, 100)}" is not a claim name` },
      ]);
    }
  }
  return { ...claims };
}
