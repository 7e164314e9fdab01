import { type Timestamp, timestampDate } from '@bufbuild/protobuf/wkt';
import {
  type ApiKey,
  type Application,
  ApplicationStatus,
  type OAuthRegistrationToken,
  type Organization,
} from '@context-gateway/proto';
import { z } from 'zod';

import { required } from '../http/required.js';

const iso = (t: Timestamp | undefined) => (t ? timestampDate(t).toISOString() : null);
/** A timestamp the row always has (created, updated): its absence is identity's bug. */
const isoOf = (t: Timestamp | undefined, what: string) => timestampDate(required(t, what)).toISOString();

export const organizationSchema = z.object({
  id: z.uuid(),
  slug: z.string(),
  name: z.string(),
  createdAt: z.string().describe('ISO 8601'),
});

export const applicationSchema = z.object({
  id: z.uuid(),
  orgId: z.uuid(),
  name: z.string(),
  clientId: z.string().describe('Public identifier, `cg_app_...`.'),
  callbackUrls: z.array(z.string()).describe('Exact URLs a connect session may return to.'),
  integrations: z.array(z.string()),
  scopes: z.array(z.string()),
  status: z.enum(['active', 'disabled']),
  clientMetadataUrl: z
    .string()
    .nullable()
    .describe(
      'An MCP client this organization allows by its Client ID Metadata Document URL: the client_id it presents and its tokens carry. Null: an ordinary application.',
    ),
  createdAt: z.string(),
  updatedAt: z.string(),
});

/** An application as an OAuth client (PUT .../oauth-client). */
export const oauthClientSchema = z.object({
  applicationId: z.uuid(),
  clientId: z.string().describe("The OAuth client_id: the application's `cg_app_...`."),
  tokenEndpointAuthMethod: z.enum(['client_secret_basic', 'private_key_jwt', 'none']),
  hasClientSecret: z.boolean(),
  clientSecret: z
    .string()
    .optional()
    .describe('`cg_cs_...`, only in the answer that issued it; only its hash is kept.'),
  idpClientId: z
    .string()
    .optional()
    .describe("The application's client id at the organization's IdP, when it may exchange that IdP's ID tokens."),
});

export const apiKeySchema = z.object({
  id: z.uuid(),
  orgId: z.uuid(),
  applicationId: z.uuid(),
  prefix: z.string().describe('The first characters of the key, to recognise it.'),
  createdAt: z.string(),
  lastUsedAt: z.string().nullable().describe('Accurate to about a minute.'),
  revokedAt: z.string().nullable(),
});

export const issuedApiKeySchema = apiKeySchema.extend({
  secret: z.string().describe('The whole key (`cg_sk_...`). Shown this once: only its hash is stored.'),
});

export const toOrganization = (o: Organization): z.infer<typeof organizationSchema> => ({
  id: o.id,
  slug: o.slug,
  name: o.name,
  createdAt: isoOf(o.createdAt, 'organization.createdAt'),
});

export const toApplication = (a: Application): z.infer<typeof applicationSchema> => ({
  id: a.id,
  orgId: a.orgId,
  name: a.name,
  clientId: a.clientId,
  callbackUrls: a.callbackUrls,
  integrations: a.integrations,
  scopes: a.scopes,
  status: a.status === ApplicationStatus.ACTIVE ? 'active' : 'disabled',
  clientMetadataUrl: a.clientMetadataUrl || null,
  createdAt: isoOf(a.createdAt, 'application.createdAt'),
  updatedAt: isoOf(a.updatedAt, 'application.updatedAt'),
});

export const toApiKey = (k: ApiKey): z.infer<typeof apiKeySchema> => ({
  id: k.id,
  orgId: k.orgId,
  applicationId: k.applicationId,
  prefix: k.prefix,
  createdAt: isoOf(k.createdAt, 'apiKey.createdAt'),
  lastUsedAt: iso(k.lastUsedAt),
  revokedAt: iso(k.revokedAt),
});

export const registrationTokenSchema = z.object({
  id: z.uuid(),
  orgId: z.uuid(),
  issuedBy: z.string().describe('Who issued it.'),
  singleUse: z.boolean().describe('True: it registers one client, then is spent.'),
  expiresAt: z.string(),
  createdAt: z.string(),
  revokedAt: z.string().nullable(),
  useCount: z.number().int().describe('How many clients were registered with it.'),
});

export const issuedRegistrationTokenSchema = registrationTokenSchema.extend({
  token: z
    .string()
    .describe(
      'The initial access token (`cg_iat_...`) a client presents as a Bearer token to the registration endpoint (RFC 7591). Shown this once: only its hash is stored.',
    ),
});

export const toRegistrationToken = (t: OAuthRegistrationToken): z.infer<typeof registrationTokenSchema> => ({
  id: t.id,
  orgId: t.orgId,
  issuedBy: t.issuedBy,
  singleUse: t.singleUse,
  expiresAt: isoOf(t.expiresAt, 'registrationToken.expiresAt'),
  createdAt: isoOf(t.createdAt, 'registrationToken.createdAt'),
  revokedAt: iso(t.revokedAt),
  useCount: t.useCount,
});
