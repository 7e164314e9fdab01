import {
  AuthenticateApiKeyRequestSchema,
  AuthenticateApiKeyResponseSchema,
  ConfigureOAuthClientRequestSchema,
  ConfigureOAuthClientResponseSchema,
  ConfigureOrganizationSsoRequestSchema,
  ConfigureOrganizationSsoResponseSchema,
  CreateApplicationRequestSchema,
  CreateApplicationResponseSchema,
  CreateOrganizationRequestSchema,
  CreateOrganizationResponseSchema,
  DeleteAccountRequestSchema,
  DeleteAccountResponseSchema,
  DeleteOrganizationSsoRequestSchema,
  DeleteOrganizationSsoResponseSchema,
  FinishPasskeyAuthenticationRequestSchema,
  FinishPasskeyCeremonyResponseSchema,
  FinishPasskeyRegistrationRequestSchema,
  FinishSsoSignInRequestSchema,
  FinishSsoSignInResponseSchema,
  GetAccountSecurityRequestSchema,
  GetAccountSecurityResponseSchema,
  GetApplicationRequestSchema,
  GetApplicationResponseSchema,
  GetOrganizationRequestSchema,
  GetOrganizationResponseSchema,
  GetOrganizationSsoRequestSchema,
  GetOrganizationSsoResponseSchema,
  IssueApiKeyRequestSchema,
  IssueApiKeyResponseSchema,
  IssueOAuthRegistrationTokenRequestSchema,
  IssueOAuthRegistrationTokenResponseSchema,
  ListApiKeysRequestSchema,
  ListApiKeysResponseSchema,
  ListApplicationOAuthGrantsRequestSchema,
  ListApplicationsRequestSchema,
  ListApplicationsResponseSchema,
  ListOAuthGrantsRequestSchema,
  ListOAuthGrantsResponseSchema,
  ListOAuthRegistrationTokensRequestSchema,
  ListOAuthRegistrationTokensResponseSchema,
  ListOrganizationsRequestSchema,
  ListOrganizationsResponseSchema,
  ListUserPasskeysRequestSchema,
  ListUserPasskeysResponseSchema,
  RemovePasskeyRequestSchema,
  RemovePasskeyResponseSchema,
  RenamePasskeyRequestSchema,
  RenamePasskeyResponseSchema,
  ResolveSessionRequestSchema,
  ResolveSessionResponseSchema,
  RevokeApiKeyRequestSchema,
  RevokeApiKeyResponseSchema,
  RevokeApplicationOAuthTokensRequestSchema,
  RevokeApplicationOAuthTokensResponseSchema,
  RevokeOAuthGrantRequestSchema,
  RevokeOAuthGrantResponseSchema,
  RevokeOAuthRegistrationTokenRequestSchema,
  RevokeOAuthRegistrationTokenResponseSchema,
  SignOutOtherSessionsRequestSchema,
  SignOutOtherSessionsResponseSchema,
  SignOutRequestSchema,
  SignOutResponseSchema,
  StartPasskeyAuthenticationRequestSchema,
  StartPasskeyCeremonyResponseSchema,
  StartPasskeyRegistrationRequestSchema,
  StartSsoSignInRequestSchema,
  StartSsoSignInResponseSchema,
  UpdateApplicationRequestSchema,
  UpdateApplicationResponseSchema,
} from '../gen/contextgateway/identity/v1/identity_pb.js';
import { defineRpc } from './descriptors.js';
import { check, type ValidationProblem } from './validation.js';

const P = 'identity.v1';

/** A secret that is present and not absurdly long (a bound on work, not a format check). */
const secret = (value: string, path: string): ValidationProblem[] => [
  ...check.nonEmpty(value, path),
  ...check.maxLength(value, 512, path),
];
/** A browser's WebAuthn JSON: bounded so a hostile page cannot make identity parse megabytes. */
const webauthnJson = (value: string, path: string): ValidationProblem[] => [
  ...check.nonEmpty(value, path),
  ...check.maxLength(value, 64_000, path),
];

/**
 * identity's request/reply contracts. The gateway's per-request checks
 * (authenticate_api_key, resolve_session) are on the hot path: short deadlines.
 */
export const identityRpc = {
  authenticateApiKey: defineRpc({
    subject: `${P}.authenticate_api_key`,
    callers: ['gateway'],
    request: AuthenticateApiKeyRequestSchema,
    response: AuthenticateApiKeyResponseSchema,
    timeoutMs: 1_500,
    validate: (m) => secret(m.apiKey, 'apiKey'),
  }),
  /** The applications holding OAuth tokens for a person (`GET /v1/me/oauth-grants`). */
  listOAuthGrants: defineRpc({
    subject: `${P}.list_oauth_grants`,
    callers: ['gateway'],
    request: ListOAuthGrantsRequestSchema,
    response: ListOAuthGrantsResponseSchema,
    validate: (m) => check.uuid(m.userId, 'userId'),
  }),
  /** A person revokes one application's tokens (`DELETE /v1/me/oauth-grants/{grantId}`). */
  revokeOAuthGrant: defineRpc({
    subject: `${P}.revoke_oauth_grant`,
    callers: ['gateway'],
    request: RevokeOAuthGrantRequestSchema,
    response: RevokeOAuthGrantResponseSchema,
    validate: (m) => [
      ...check.uuid(m.userId, 'userId'),
      ...check.nonEmpty(m.grantId, 'grantId'),
      ...check.maxLength(m.grantId, 100, 'grantId'),
    ],
  }),
  /** An admin lists an application's OAuth grants, every person's (admin API). */
  listApplicationOAuthGrants: defineRpc({
    subject: `${P}.list_application_oauth_grants`,
    callers: ['gateway'],
    request: ListApplicationOAuthGrantsRequestSchema,
    response: ListOAuthGrantsResponseSchema,
    validate: (m) => [...check.uuid(m.orgId, 'orgId'), ...check.uuid(m.applicationId, 'applicationId')],
  }),
  /** An admin revokes every OAuth token of an application (admin API). */
  revokeApplicationOAuthTokens: defineRpc({
    subject: `${P}.revoke_application_oauth_tokens`,
    callers: ['gateway'],
    request: RevokeApplicationOAuthTokensRequestSchema,
    response: RevokeApplicationOAuthTokensResponseSchema,
    validate: (m) => [...check.uuid(m.orgId, 'orgId'), ...check.uuid(m.applicationId, 'applicationId')],
  }),
  getApplication: defineRpc({
    subject: `${P}.get_application`,
    callers: ['gateway'],
    request: GetApplicationRequestSchema,
    response: GetApplicationResponseSchema,
    validate: (m) => [...check.uuid(m.orgId, 'orgId'), ...check.uuid(m.applicationId, 'applicationId')],
  }),
  resolveSession: defineRpc({
    subject: `${P}.resolve_session`,
    // The broker resolves the session token of the person its person calls act for.
    callers: ['gateway', 'connection-broker'],
    request: ResolveSessionRequestSchema,
    response: ResolveSessionResponseSchema,
    timeoutMs: 1_500,
    validate: (m) => secret(m.sessionToken, 'sessionToken'),
  }),
  signOut: defineRpc({
    subject: `${P}.sign_out`,
    callers: ['gateway'],
    request: SignOutRequestSchema,
    response: SignOutResponseSchema,
    validate: (m) => secret(m.sessionToken, 'sessionToken'),
  }),
  /** The portal's security page: the session's person's passkeys and live sessions. */
  getAccountSecurity: defineRpc({
    subject: `${P}.get_account_security`,
    callers: ['gateway'],
    request: GetAccountSecurityRequestSchema,
    response: GetAccountSecurityResponseSchema,
    validate: (m) => secret(m.sessionToken, 'sessionToken'),
  }),
  /**
   * A person's passkeys' public keys by user id: personal-server pins them; the gateway (the
   * portal) builds the challenge a pinned passkey signs to endorse a new one.
   */
  listUserPasskeys: defineRpc({
    subject: `${P}.list_user_passkeys`,
    callers: ['personal-server', 'gateway'],
    request: ListUserPasskeysRequestSchema,
    response: ListUserPasskeysResponseSchema,
    validate: (m) => check.uuid(m.userId, 'userId'),
  }),
  removePasskey: defineRpc({
    subject: `${P}.remove_passkey`,
    callers: ['gateway'],
    request: RemovePasskeyRequestSchema,
    response: RemovePasskeyResponseSchema,
    validate: (m) => [...secret(m.sessionToken, 'sessionToken'), ...check.uuid(m.passkeyId, 'passkeyId')],
  }),
  renamePasskey: defineRpc({
    subject: `${P}.rename_passkey`,
    callers: ['gateway'],
    request: RenamePasskeyRequestSchema,
    response: RenamePasskeyResponseSchema,
    validate: (m) => [
      ...secret(m.sessionToken, 'sessionToken'),
      ...check.uuid(m.passkeyId, 'passkeyId'),
      ...check.nonEmpty(m.name.trim(), 'name'),
      ...check.maxLength(m.name.trim(), 64, 'name'),
      // eslint-disable-next-line no-control-regex -- control characters are what is refused
      ...(/[\u0000-\u001f\u007f]/.test(m.name) ? [{ path: 'name', message: 'must be one line of text' }] : []),
    ],
  }),
  deleteAccount: defineRpc({
    subject: `${P}.delete_account`,
    callers: ['gateway'],
    request: DeleteAccountRequestSchema,
    response: DeleteAccountResponseSchema,
    validate: (m) => secret(m.sessionToken, 'sessionToken'),
  }),
  signOutOtherSessions: defineRpc({
    subject: `${P}.sign_out_other_sessions`,
    callers: ['gateway'],
    request: SignOutOtherSessionsRequestSchema,
    response: SignOutOtherSessionsResponseSchema,
    validate: (m) => secret(m.sessionToken, 'sessionToken'),
  }),

  // --- admin (operator) --------------------------------------------------------
  createOrganization: defineRpc({
    subject: `${P}.create_organization`,
    callers: ['gateway'],
    request: CreateOrganizationRequestSchema,
    response: CreateOrganizationResponseSchema,
    validate: (m) => [
      ...check.nonEmpty(m.name, 'name'),
      ...check.maxLength(m.name, 200, 'name'),
      ...check.maxLength(m.slug, 63, 'slug'),
    ],
  }),
  listOrganizations: defineRpc({
    subject: `${P}.list_organizations`,
    callers: ['gateway'],
    request: ListOrganizationsRequestSchema,
    response: ListOrganizationsResponseSchema,
  }),
  getOrganization: defineRpc({
    subject: `${P}.get_organization`,
    callers: ['gateway'],
    request: GetOrganizationRequestSchema,
    response: GetOrganizationResponseSchema,
    validate: (m) => check.uuid(m.orgId, 'orgId'),
  }),
  createApplication: defineRpc({
    subject: `${P}.create_application`,
    callers: ['gateway'],
    request: CreateApplicationRequestSchema,
    response: CreateApplicationResponseSchema,
    validate: (m) => [
      ...check.uuid(m.orgId, 'orgId'),
      ...check.nonEmpty(m.name, 'name'),
      ...check.maxLength(m.name, 200, 'name'),
      ...check.maxLength(m.clientMetadataUrl, 2_000, 'clientMetadataUrl'),
    ],
  }),
  updateApplication: defineRpc({
    subject: `${P}.update_application`,
    callers: ['gateway'],
    request: UpdateApplicationRequestSchema,
    response: UpdateApplicationResponseSchema,
    validate: (m) => [
      ...check.uuid(m.orgId, 'orgId'),
      ...check.uuid(m.applicationId, 'applicationId'),
      ...(m.name === undefined ? [] : [...check.nonEmpty(m.name, 'name'), ...check.maxLength(m.name, 200, 'name')]),
    ],
  }),
  listApplications: defineRpc({
    subject: `${P}.list_applications`,
    callers: ['gateway'],
    request: ListApplicationsRequestSchema,
    response: ListApplicationsResponseSchema,
    validate: (m) => check.uuid(m.orgId, 'orgId'),
  }),
  configureOAuthClient: defineRpc({
    subject: `${P}.configure_oauth_client`,
    callers: ['gateway'],
    request: ConfigureOAuthClientRequestSchema,
    response: ConfigureOAuthClientResponseSchema,
    validate: (m) => [
      ...check.uuid(m.orgId, 'orgId'),
      ...check.uuid(m.applicationId, 'applicationId'),
      ...check.nonEmpty(m.tokenEndpointAuthMethod, 'tokenEndpointAuthMethod'),
      ...check.maxLength(m.tokenEndpointAuthMethod, 40, 'tokenEndpointAuthMethod'),
      ...check.maxLength(m.jwksJson, 16_000, 'jwksJson'),
      ...check.maxLength(m.jwksUri, 2_000, 'jwksUri'),
    ],
  }),
  /** An admin issues an initial access token for dynamic client registration (RFC 7591). */
  issueOAuthRegistrationToken: defineRpc({
    subject: `${P}.issue_oauth_registration_token`,
    callers: ['gateway'],
    request: IssueOAuthRegistrationTokenRequestSchema,
    response: IssueOAuthRegistrationTokenResponseSchema,
    validate: (m) => [
      ...check.uuid(m.orgId, 'orgId'),
      ...check.nonEmpty(m.issuedBy, 'issuedBy'),
      ...check.maxLength(m.issuedBy, 200, 'issuedBy'),
      ...(m.expiresInSeconds >= 60 && m.expiresInSeconds <= 30 * 86_400
        ? []
        : [{ path: 'expiresInSeconds', message: 'must be 60 .. 2592000' }]),
    ],
  }),
  listOAuthRegistrationTokens: defineRpc({
    subject: `${P}.list_oauth_registration_tokens`,
    callers: ['gateway'],
    request: ListOAuthRegistrationTokensRequestSchema,
    response: ListOAuthRegistrationTokensResponseSchema,
    validate: (m) => check.uuid(m.orgId, 'orgId'),
  }),
  revokeOAuthRegistrationToken: defineRpc({
    subject: `${P}.revoke_oauth_registration_token`,
    callers: ['gateway'],
    request: RevokeOAuthRegistrationTokenRequestSchema,
    response: RevokeOAuthRegistrationTokenResponseSchema,
    validate: (m) => [...check.uuid(m.orgId, 'orgId'), ...check.uuid(m.registrationTokenId, 'registrationTokenId')],
  }),
  issueApiKey: defineRpc({
    subject: `${P}.issue_api_key`,
    callers: ['gateway'],
    request: IssueApiKeyRequestSchema,
    response: IssueApiKeyResponseSchema,
    validate: (m) => check.uuid(m.applicationId, 'applicationId'),
  }),
  revokeApiKey: defineRpc({
    subject: `${P}.revoke_api_key`,
    callers: ['gateway'],
    request: RevokeApiKeyRequestSchema,
    response: RevokeApiKeyResponseSchema,
    validate: (m) => [...check.uuid(m.applicationId, 'applicationId'), ...check.uuid(m.apiKeyId, 'apiKeyId')],
  }),
  listApiKeys: defineRpc({
    subject: `${P}.list_api_keys`,
    callers: ['gateway'],
    request: ListApiKeysRequestSchema,
    response: ListApiKeysResponseSchema,
    validate: (m) => check.uuid(m.applicationId, 'applicationId'),
  }),

  // --- passkey ceremonies --------------------------------------------------------
  startPasskeyRegistration: defineRpc({
    subject: `${P}.start_passkey_registration`,
    callers: ['gateway'],
    request: StartPasskeyRegistrationRequestSchema,
    response: StartPasskeyCeremonyResponseSchema,
    validate: (m) => [
      ...check.maxLength(m.displayName, 100, 'displayName'),
      ...(m.sessionToken === '' ? [] : secret(m.sessionToken, 'sessionToken')),
    ],
  }),
  finishPasskeyRegistration: defineRpc({
    subject: `${P}.finish_passkey_registration`,
    callers: ['gateway'],
    request: FinishPasskeyRegistrationRequestSchema,
    response: FinishPasskeyCeremonyResponseSchema,
    validate: (m) => [...secret(m.ceremonyToken, 'ceremonyToken'), ...webauthnJson(m.responseJson, 'responseJson')],
  }),
  startPasskeyAuthentication: defineRpc({
    subject: `${P}.start_passkey_authentication`,
    callers: ['gateway'],
    request: StartPasskeyAuthenticationRequestSchema,
    response: StartPasskeyCeremonyResponseSchema,
  }),
  finishPasskeyAuthentication: defineRpc({
    subject: `${P}.finish_passkey_authentication`,
    callers: ['gateway'],
    request: FinishPasskeyAuthenticationRequestSchema,
    response: FinishPasskeyCeremonyResponseSchema,
    validate: (m) => [...secret(m.ceremonyToken, 'ceremonyToken'), ...webauthnJson(m.responseJson, 'responseJson')],
  }),

  // --- organization SSO ------------------------------------------------------------
  /** Admin: set an org's OIDC IdP (identity fetches its discovery document first: allow for it). */
  configureOrganizationSso: defineRpc({
    subject: `${P}.configure_organization_sso`,
    callers: ['gateway'],
    request: ConfigureOrganizationSsoRequestSchema,
    response: ConfigureOrganizationSsoResponseSchema,
    timeoutMs: 15_000,
    validate: (m) => [
      ...check.uuid(m.orgId, 'orgId'),
      ...check.nonEmpty(m.issuer, 'issuer'),
      ...check.maxLength(m.issuer, 2_000, 'issuer'),
      ...check.nonEmpty(m.clientId, 'clientId'),
      ...check.maxLength(m.clientId, 512, 'clientId'),
      ...check.maxLength(m.clientSecret, 2_000, 'clientSecret'),
      ...(m.emailDomains.length > 50 ? [{ path: 'emailDomains', message: 'at most 50 domains' }] : []),
      ...m.emailDomains.flatMap((d, i) => check.maxLength(d, 253, `emailDomains.${i}`)),
      ...(Object.keys(m.requiredClaims).length > 20 ? [{ path: 'requiredClaims', message: 'at most 20 claims' }] : []),
      ...Object.entries(m.requiredClaims).flatMap(([k, v]) => [
        ...check.maxLength(k, 100, 'requiredClaims'),
        ...check.maxLength(v, 500, `requiredClaims.${k.slice(0, 100)}`),
      ]),
    ],
  }),
  getOrganizationSso: defineRpc({
    subject: `${P}.get_organization_sso`,
    callers: ['gateway'],
    request: GetOrganizationSsoRequestSchema,
    response: GetOrganizationSsoResponseSchema,
    validate: (m) => check.uuid(m.orgId, 'orgId'),
  }),
  deleteOrganizationSso: defineRpc({
    subject: `${P}.delete_organization_sso`,
    callers: ['gateway'],
    request: DeleteOrganizationSsoRequestSchema,
    response: DeleteOrganizationSsoResponseSchema,
    validate: (m) => check.uuid(m.orgId, 'orgId'),
  }),
  /** The sign-in page's "Sign in with your organization": where to send the browser. */
  startSsoSignIn: defineRpc({
    subject: `${P}.start_sso_sign_in`,
    callers: ['gateway'],
    request: StartSsoSignInRequestSchema,
    response: StartSsoSignInResponseSchema,
    timeoutMs: 10_000,
    validate: (m) => [
      ...check.nonEmpty(m.organization, 'organization'),
      ...check.maxLength(m.organization, 320, 'organization'),
      ...check.nonEmpty(m.returnTo, 'returnTo'),
      ...check.maxLength(m.returnTo, 2_000, 'returnTo'),
    ],
  }),
  /** The IdP's redirect back: code exchange, ID token checks, provisioning, a session. */
  finishSsoSignIn: defineRpc({
    subject: `${P}.finish_sso_sign_in`,
    callers: ['gateway'],
    request: FinishSsoSignInRequestSchema,
    response: FinishSsoSignInResponseSchema,
    timeoutMs: 15_000,
    validate: (m) => [
      ...secret(m.browserToken, 'browserToken'),
      ...check.maxLength(m.callbackQuery, 8_000, 'callbackQuery'),
    ],
  }),
} as const;
