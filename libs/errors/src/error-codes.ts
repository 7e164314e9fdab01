/**
 * The one catalog of stable error codes. A code never changes meaning once shipped:
 * apps branch on it, auditors search for it. The HTTP edge maps each code to a status
 * exhaustively (gateway's problem mapper); NATS replies carry the code as is.
 */
export const ErrorCodes = {
  // --- input ---------------------------------------------------------------
  /** The body or message could not be parsed at all (bad JSON, bad protobuf). */
  malformed_request: { status: 400, title: 'Malformed request' },
  /** Parsed, but a field is missing, of the wrong type or out of range. */
  validation_failed: { status: 422, title: 'Validation failed' },
  /** A field the schema does not know was sent to a public endpoint. */
  unknown_field: { status: 422, title: 'Unknown field' },
  /** The body is larger than the endpoint accepts. */
  payload_too_large: { status: 413, title: 'Payload too large' },
  /** The media type of the body is not one the endpoint accepts. */
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  /** No route for this method and path. */
  route_not_found: { status: 404, title: 'Not found' },
  /** The route exists but not for this method. */
  method_not_allowed: { status: 405, title: 'Method not allowed' },

  // --- caller identity -----------------------------------------------------
  unauthenticated: { status: 401, title: 'Unauthenticated' },
  forbidden: { status: 403, title: 'Forbidden' },
  /** The admin API is off because the gateway has no OPERATOR_TOKEN configured. */
  admin_disabled: { status: 503, title: 'Admin API disabled' },
  /** A passkey ceremony's challenge is unknown, already used, expired or bound to another browser. */
  webauthn_challenge_invalid: { status: 400, title: 'Passkey challenge invalid' },
  /** The authenticator's response did not verify (signature, origin, RP ID, user verification, counter). */
  webauthn_verification_failed: { status: 401, title: 'Passkey verification failed' },
  /** A sensitive account change (adding a passkey) needs a passkey use within the last minutes. */
  reauthentication_required: { status: 401, title: 'Reauthentication required' },

  // --- organization SSO (identity, src/sso) ----------------------------------
  /** The person's organization requires its SSO: a passkey alone does not sign them in. */
  sso_required: { status: 403, title: 'Organization SSO required' },
  /** No organization with SSO matches the email domain or slug given. */
  sso_not_configured: { status: 404, title: 'Organization SSO not configured' },
  /** The IdP configuration is refused: not https, discovery failed, or it names another issuer. */
  sso_issuer_invalid: { status: 422, title: 'SSO issuer invalid' },
  /** The SSO callback's state is unknown, already used, expired or not this browser's. */
  sso_state_invalid: { status: 400, title: 'SSO state invalid' },
  /** The IdP's answer did not verify (wrong issuer, nonce mismatch, bad ID token, refused code) or was an error. */
  sso_response_invalid: { status: 401, title: 'SSO response invalid' },
  /** The IdP vouched for the person, but their email or claims do not make them a member of the organization. */
  sso_membership_refused: { status: 403, title: 'Not a member of the organization' },

  // --- connect flow and connections (connection-broker) ---------------------
  /** The connection does not exist or the calling app holds no grant on it (never 403: existence does not leak). */
  connection_not_found: { status: 404, title: 'Connection not found' },
  /** The integration is not in the catalog, or the application may not request it. */
  integration_not_allowed: { status: 422, title: 'Integration not allowed' },
  /** A requested scope is unknown for the integration, or the application may not request it. */
  scope_not_allowed: { status: 422, title: 'Scope not allowed' },
  /** The callback URL is not exactly one the application registered. */
  callback_url_not_registered: { status: 422, title: 'Callback URL not registered' },
  /** The connect session is unknown, already used, or its browser binding does not match. */
  connect_session_invalid: { status: 400, title: 'Connect session invalid' },
  /** The connect session's 10 minutes are over. */
  connect_session_expired: { status: 410, title: 'Connect session expired' },
  /** The connect link was made for one person (the app acted with their token) and someone else opened it. */
  connect_session_other_person: { status: 403, title: 'Connect link for another person' },
  /**
   * A person's passkey signature (over a grant they allow, or a passkey they add) is missing,
   * does not verify against a passkey their Personal Server pinned, is for other terms, has
   * expired or was already used.
   */
  passkey_signature_invalid: { status: 403, title: 'Passkey signature invalid' },
  /** No such approval request (gateway mode), or one for another person: only the person the agent acts for sees it. */
  approval_not_found: { status: 404, title: 'Approval not found' },
  /** The approval request's time is over: the agent's retry asks for a new one. */
  approval_expired: { status: 410, title: 'Approval expired' },
  /** The approval request was already approved, declined or used: each is decided once. */
  approval_already_decided: { status: 409, title: 'Approval already decided' },
  /** The person declined the tool call: the agent's retry of that exact call fails once with this. */
  approval_declined: { status: 403, title: 'Approval declined' },
  /** The OAuth state on a callback is unknown, used, expired or not this browser's. */
  oauth_state_invalid: { status: 400, title: 'OAuth state invalid' },
  /** The source refused or failed the token exchange or refresh. */
  source_error: { status: 502, title: 'Source error' },
  /** The source rejected the refresh token (invalid_grant): the user must connect again. */
  connection_needs_reauth: { status: 409, title: 'Connection needs reauthorization' },
  /** The connection's source has no API (its data arrives as an uploaded file export): there is no token to hand out or sync with. */
  no_source_api: { status: 409, title: 'Source has no API' },
  /**
   * The person has no usable connection to the integration for this application (none, no
   * grant, or the source refused it): the problem's `connectUrl` starts the connect flow.
   */
  connection_required: { status: 409, title: 'Connection required' },
  /**
   * A remote MCP server registered with `auth: "mcp_oauth"` does not say, in a way the gateway
   * can use, how to get a token for it: no protected resource metadata (RFC 9728) from its 401
   * challenge or well-known path, metadata for another resource, no authorization server
   * metadata (RFC 8414 / OIDC discovery), no PKCE S256, or an address the outbound guard refuses.
   */
  upstream_auth_discovery_failed: { status: 422, title: 'Upstream authorization not discoverable' },
  /** The authorization server's metadata names another issuer than the one it was found under (mix-up). */
  upstream_auth_issuer_mismatch: { status: 422, title: 'Upstream issuer mismatch' },
  /**
   * An MCP server's authorization server answered on the redirect URI of another registration
   * than the connect session's (each has its own, against mix-up: RFC 9700 §4.4.2).
   */
  upstream_auth_redirect_mismatch: { status: 400, title: 'Upstream redirect mismatch' },
  /**
   * The gateway cannot identify itself to the MCP server's authorization server: no Client ID
   * Metadata Document support, no dynamic registration (or it refused), and no pre-registered client.
   */
  upstream_auth_client_unavailable: { status: 422, title: 'Upstream client unavailable' },
  /** A consent form post without a matching CSRF token. */
  csrf_invalid: { status: 403, title: 'CSRF check failed' },

  // --- policy --------------------------------------------------------------
  /**
   * A policy layer refused the request. The problem names the deciding layer and the matched
   * rule ids (`errors`: decision.decidedBy, decision.reason, decision.matched.<layer>).
   */
  policy_denied: { status: 403, title: 'Denied by policy' },
  /**
   * An org or user rule allows this only once the person approves each call with their
   * passkey (`approvalRequired`), which only a held MCP tool call at /mcp can ask for: a
   * credential, a records query or a listing would use it unapproved, so it is refused. The
   * problem names the asking layer and rules (`errors`: decision.approval.<layer>).
   */
  approval_required: { status: 403, title: 'Approval required' },
  /**
   * The gateway could not bring its policy cache up to the latest change in time (policy
   * service or stream unreachable). It refuses rather than decide on rules that may be stale.
   */
  policy_unavailable: { status: 503, title: 'Policy unavailable' },

  // --- gateway mode (named virtual servers) -----------------------------------
  /** No virtual server of that name in the caller's organization (another org's is not found either). */
  mcp_virtual_server_not_found: { status: 404, title: 'MCP virtual server not found' },
  /** A virtual server selects an integration (or one of its tools) the org registered no MCP server for. */
  mcp_server_not_registered: { status: 422, title: 'MCP server not registered' },

  // --- sync ------------------------------------------------------------------
  /** A webhook delivery whose X-Hub-Signature-256 does not match its body under our secret. */
  webhook_signature_invalid: { status: 401, title: 'Webhook signature invalid' },

  // --- messaging -----------------------------------------------------------
  /**
   * Nobody is subscribed to the subject (the service is down or not deployed), or the
   * service's database is not reachable right now (AppError.from). Retry later.
   */
  service_unavailable: { status: 503, title: 'Service unavailable' },
  /** The request's deadline passed before a reply came. */
  deadline_exceeded: { status: 504, title: 'Deadline exceeded' },
  /** A subject that is not in the catalog. */
  unknown_subject: { status: 404, title: 'Unknown subject' },

  // --- crypto --------------------------------------------------------------
  /** Authentication of a ciphertext failed: tampered, wrong key or wrong owner. */
  decryption_failed: { status: 500, title: 'Decryption failed' },
  /** The key-encryption key version a wrapped key names is not known to the provider. */
  key_not_found: { status: 500, title: 'Key not found' },
  /** A key file is readable by group/others; refusing it beats leaking every KEK. */
  key_file_insecure: { status: 500, title: 'Key file permissions too open' },
  /** A key file is missing, unreadable or malformed; we never guess or regenerate keys. */
  key_file_invalid: { status: 500, title: 'Key file invalid' },
  /** The keyring file is gone but the database holds keys it wrapped: a fresh one is refused. */
  key_file_missing: { status: 500, title: 'Key file missing while keys it wrapped are stored' },
  /**
   * The PKCS#11 key store cannot be used: the module (or the pkcs11js addon) does not load,
   * or no token has the configured label. The message says which and how to fix it.
   */
  key_store_unavailable: { status: 500, title: 'Key store unavailable' },
  /** The key store refused the configured PIN (wrong, locked or expired). */
  key_store_login_failed: { status: 500, title: 'Key store login failed' },
  /** A data key was used after it was destroyed (its connection was crypto-shredded). */
  key_destroyed: { status: 410, title: 'Key destroyed' },

  // --- database ------------------------------------------------------------
  /**
   * An applied migration's migration.sql was edited afterwards: the database no longer
   * matches the history in git. The service refuses to start rather than guess.
   */
  migration_checksum_mismatch: { status: 500, title: 'Migration checksum mismatch' },
  /**
   * A migration failed, now or on an earlier start (recorded in _prisma_migrations); the
   * service will not start until an operator fixes the database and marks it rolled back.
   */
  migration_failed: { status: 500, title: 'Migration failed' },
  /**
   * The schema lacks migrations this build needs, and the service's own database role may
   * not apply them: the deployment's migration step (as the owner role) has not run yet.
   */
  migration_pending: { status: 503, title: 'Migration pending' },
  /**
   * Another process held the migration lock for longer than this one was willing to wait,
   * or a migration lost a table lock conflict (a deadlock, its lock_timeout) on every
   * attempt. Nothing is recorded as failed: the next start tries again.
   */
  migration_lock_timeout: { status: 503, title: 'Migration lock timeout' },

  // --- audit ---------------------------------------------------------------
  /**
   * The audit event could not be stored (the AUDIT stream did not acknowledge it). The
   * request was not executed: nothing happens that the audit trail does not record.
   */
  audit_unavailable: { status: 503, title: 'Audit trail unavailable' },

  // --- personal servers (records, grants) -----------------------------------
  /** The app's grant on this connection was revoked (by the user or the app); it stays revoked. */
  grant_revoked: { status: 403, title: 'Grant revoked' },
  /** The record type asked for is outside the scopes the user granted this app. */
  scope_not_granted: { status: 403, title: 'Scope not granted' },
  /**
   * The record type was retired by a newer record catalog (docs/record-types.md, "Migrations
   * of stored records"): its records now live under its successor, which the message names.
   */
  record_type_retired: { status: 410, title: 'Record type retired' },
  /** The record type is not in the catalog, or its body does not match the type's schema. */
  invalid_record: { status: 422, title: 'Invalid record' },
  /** The shard asked does not own this user (a rebalance moved it); ask the directory again. */
  wrong_shard: { status: 421, title: 'Wrong shard' },

  // --- generic -------------------------------------------------------------
  not_found: { status: 404, title: 'Not found' },
  conflict: { status: 409, title: 'Conflict' },
  rate_limited: { status: 429, title: 'Too many requests' },
  not_ready: { status: 503, title: 'Not ready' },
  internal: { status: 500, title: 'Internal error' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ErrorCodes;

export function isErrorCode(value: string): value is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ErrorCodes, value);
}
