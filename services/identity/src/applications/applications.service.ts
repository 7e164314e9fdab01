import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';

import { AppError } from '@context-gateway/errors';
import { SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable } from '@nestjs/common';

import type { Env } from '../env.js';
import type { Application } from '../generated/prisma/client.js';
import { TokenRevocationEvents, TokenRevocationKind } from '../oauth/token-revocation-events.js';
import { OrganizationsService } from '../organizations/organizations.service.js';
import { ApplicationEvents } from './application-events.js';
import { type ApplicationDeclaration, checkDeclaration } from './application-rules.js';
import { ApplicationsRepository } from './applications.repository.js';

const dedupe = (values: string[]) => [...new Set(values.map((v) => v.trim()))];

/** The declaration, de-duplicated and checked whole; accepted callback URLs are already in normalized form. */
function validDeclaration(input: ApplicationDeclaration, metadataClient = false): ApplicationDeclaration {
  const declaration = {
    callbackUrls: dedupe(input.callbackUrls),
    integrations: dedupe(input.integrations),
    scopes: dedupe(input.scopes),
  };
  const problems = checkDeclaration(declaration, metadataClient);
  if (problems.length > 0) throw new AppError('validation_failed', 'The application is not valid', problems);
  return declaration;
}

/** A loopback host as URL.hostname writes it: what OAUTH_CIMD_ALLOW_LOOPBACK (tests only) lets a test use. */
const isLoopbackHost = (hostname: string) =>
  hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);

/**
 * A Client ID Metadata Document URL as MCP clients present it: https, a path (not the root),
 * no credentials, fragment or dot segments, already in normalized form (the client_id is
 * compared as a string), on a host the operator allows when OAUTH_CIMD_ALLOWED_HOSTS is set.
 * The host is a DNS name: an IP literal or localhost names no one's published client (and is
 * how an allowed URL would point the server at an internal address); with
 * OAUTH_CIMD_ALLOW_LOOPBACK (tests only) loopback ones are let through, for documents a test
 * serves on this machine.
 */
function checkMetadataUrl(value: string, allowedHosts: string[] | undefined, allowLoopback: boolean): string {
  const problem = (message: string) =>
    new AppError('validation_failed', `clientMetadataUrl ${message}`, [{ path: 'clientMetadataUrl', message }]);
  const url = URL.parse(value);
  if (!url || url.protocol !== 'https:') throw problem('must be an https URL');
  if (url.username || url.password || url.hash || value.includes('#')) {
    throw problem('must have no credentials and no fragment');
  }
  if (url.pathname === '/' || /\/\.\.?(\/|$)/.test(url.pathname))
    throw problem('must have a path without dot segments');
  if (url.href !== value) throw problem(`must be written in normalized form: ${url.href}`);
  const ipLiteral = isIP(url.hostname) !== 0 || url.hostname.startsWith('[');
  const local = url.hostname === 'localhost' || url.hostname.endsWith('.localhost');
  if ((ipLiteral || local) && !(allowLoopback && isLoopbackHost(url.hostname)))
    throw problem('must be on a DNS host name, not an IP address or localhost');
  if (allowedHosts && !allowedHosts.includes(url.hostname)) throw problem('is on a host the operator does not allow');
  return value;
}

@Injectable()
export class ApplicationsService {
  constructor(
    private readonly applications: ApplicationsRepository,
    private readonly organizations: OrganizationsService,
    private readonly events: ApplicationEvents,
    private readonly revocations: TokenRevocationEvents,
    @Inject(SERVICE_ENV) private readonly env: Pick<Env, 'OAUTH_CIMD_ALLOWED_HOSTS' | 'OAUTH_CIMD_ALLOW_LOOPBACK'>,
  ) {}

  async create(input: {
    orgId: string;
    name: string;
    callbackUrls: string[];
    integrations: string[];
    scopes: string[];
    /** An MCP client allowed by its metadata document URL; empty or absent: an ordinary application. */
    clientMetadataUrl?: string;
  }): Promise<Application> {
    const declaration = validDeclaration(input, Boolean(input.clientMetadataUrl));
    const clientMetadataUrl = input.clientMetadataUrl
      ? checkMetadataUrl(input.clientMetadataUrl, this.env.OAUTH_CIMD_ALLOWED_HOSTS, this.env.OAUTH_CIMD_ALLOW_LOOPBACK)
      : undefined;
    await this.organizations.get(input.orgId);
    let app: Application;
    try {
      app = await this.applications.create({
        orgId: input.orgId,
        name: input.name.trim(),
        // Public, so 128 random bits are plenty; it only has to be unique and unguessable.
        clientId: `cg_app_${randomBytes(16).toString('base64url')}`,
        callbackUrls: declaration.callbackUrls,
        integrations: declaration.integrations,
        scopes: declaration.scopes,
        // A metadata-URL client is public (PKCE) or keys itself by its document's jwks_uri.
        ...(clientMetadataUrl ? { clientMetadataUrl, tokenEndpointAuthMethod: 'none' } : {}),
      });
    } catch (error) {
      if ((error as { code?: string }).code === 'P2002' && clientMetadataUrl) {
        throw new AppError('conflict', 'This organization already allows this MCP client', [
          { path: 'clientMetadataUrl', message: 'already allowed by another application of this organization' },
        ]);
      }
      throw error;
    }
    await this.events.published(app);
    return app;
  }

  /**
   * Changes what is given (lists replace, never merge), re-checks the whole declaration,
   * bumps the revision and publishes it. A disabled application's keys and tokens stop working
   * at once: authenticate reads the status, and before this returns every gateway is told
   * (`tokens_revoked`, kind APPLICATION) to forget what it remembers of them.
   */
  async update(input: {
    orgId: string;
    applicationId: string;
    name?: string;
    callbackUrls?: string[];
    integrations?: string[];
    scopes?: string[];
    status?: 'active' | 'disabled';
  }): Promise<Application> {
    const current = await this.getInOrg(input.orgId, input.applicationId);
    const declaration = validDeclaration(
      {
        callbackUrls: input.callbackUrls ?? current.callbackUrls,
        integrations: input.integrations ?? current.integrations,
        scopes: input.scopes ?? current.scopes,
      },
      current.clientMetadataUrl !== null,
    );
    const app = await this.revocations.revoke(
      (tx) =>
        this.applications.update(
          input.orgId,
          input.applicationId,
          {
            name: input.name?.trim(),
            callbackUrls: input.callbackUrls && declaration.callbackUrls,
            integrations: input.integrations && declaration.integrations,
            scopes: input.scopes && declaration.scopes,
            status: input.status,
          },
          tx,
        ),
      (updated) =>
        updated && updated.status !== 'active'
          ? { orgId: updated.orgId, kind: TokenRevocationKind.APPLICATION, subjectId: updated.id }
          : undefined,
    );
    if (!app) throw new AppError('not_found', 'No such application');
    await this.events.published(app);
    return app;
  }

  /** Org-scoped read: another org's application is `not_found`, never `forbidden`. */
  async getInOrg(orgId: string, id: string): Promise<Application> {
    const app = await this.applications.findInOrg(orgId, id);
    if (!app) throw new AppError('not_found', 'No such application');
    return app;
  }

  async get(id: string): Promise<Application> {
    const app = await this.applications.findById(id);
    if (!app) throw new AppError('not_found', 'No such application');
    return app;
  }

  async list(orgId: string): Promise<Application[]> {
    await this.organizations.get(orgId);
    return this.applications.listInOrg(orgId);
  }
}
