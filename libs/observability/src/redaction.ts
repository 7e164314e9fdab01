/**
 * Secret scrubbing for everything that may end up in a log line or a span.
 *
 * Two nets, on purpose: pino's `redact` (REDACT_PATHS) is fast but only sees fixed
 * paths, so every logged value also goes through scrubSecrets, which walks objects of
 * any depth and masks credentials that hide inside free text (error messages, URLs).
 */

export const REDACTED = '[redacted]';

// Normalised (lower case, separators removed) key names whose values are always secret.
const SECRET_KEYS = new Set([
  'authorization',
  'proxyauthorization',
  'cookie',
  'setcookie',
  'password',
  'passwd',
  'passphrase',
  'secret',
  'clientsecret',
  'token',
  'accesstoken',
  'refreshtoken',
  'idtoken',
  'sessiontoken',
  'sessionid',
  'apikey',
  'xapikey',
  'clientassertion',
  'codeverifier',
  'code',
  'challenge',
  'codechallenge',
  'privatekey',
  'credential',
  'credentials',
  'encryptionkey',
  'signingkey',
  'masterkey',
  'dek',
  'kek',
]);

// Catches names the set above cannot list: githubToken, webhook_secret, db-password...
const SECRET_KEY_SUFFIX = /(token|secret|password|passwd|passphrase|apikey|privatekey|cookie)$/;

function normaliseKey(key: string): string {
  return key.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/** True when a property with this name must never be logged as is. */
export function isSecretKey(key: string): boolean {
  const k = normaliseKey(key);
  return SECRET_KEYS.has(k) || SECRET_KEY_SUFFIX.test(k);
}

/**
 * pino `redact` paths: the well-known places of secrets in request/response logs, and
 * each secret key at the top level and one level down. `code` is left to scrubSecrets,
 * which can tell an OAuth authorization code from an error code.
 */
export const REDACT_PATHS: string[] = (() => {
  const headerNames = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key'];
  const keyNames = [
    'authorization',
    'cookie',
    'password',
    'secret',
    'token',
    'access_token',
    'accessToken',
    'refresh_token',
    'refreshToken',
    'id_token',
    'idToken',
    'api_key',
    'apiKey',
    'client_secret',
    'clientSecret',
    'code_verifier',
    'codeVerifier',
    'challenge',
    'private_key',
    'privateKey',
  ];
  const headerPaths = ['req.headers', 'res.headers', 'request.headers', 'response.headers', 'headers'].flatMap((base) =>
    headerNames.map((h) => `${base}["${h}"]`),
  );
  const keyPaths = keyNames.flatMap((k) => [k, `*.${k}`]);
  const codePaths = ['req.query.code', 'query.code', 'body.code', 'req.body.code'];
  return [...headerPaths, ...keyPaths, ...codePaths];
})();

// Credentials that show up inside free text. Order matters: URLs before bare tokens.
const STRING_MASKS: Array<[RegExp, string]> = [
  // user:password@ in connection strings (postgres://, nats://, https://)
  [/\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]+:)[^\s@/]+@/gi, `$1${REDACTED}@`],
  // secrets passed as query parameters (OAuth callbacks, token endpoints)
  [
    /([?&#](?:access_token|refresh_token|id_token|code|code_verifier|client_secret|token|api_key|apikey|password|state)=)[^&#\s"']+/gi,
    `$1${REDACTED}`,
  ],
  [/\b(Bearer|Basic|Token)\s+[A-Za-z0-9\-._~+/]+=*/gi, `$1 ${REDACTED}`],
  // our own secrets, all prefixed: API keys, sessions, auditor tokens, WebAuthn ceremonies,
  // OAuth client secrets and initial access tokens (dynamic registration)
  [/\bcg_(sk|ss|aud|wc|cs|iat)_[A-Za-z0-9_-]+/g, `cg_$1_${REDACTED}`],
  // anything shaped like a JWT (header.payload.signature, base64url, header starts with eyJ)
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, REDACTED],
];

/** Masks bearer tokens, API keys, JWTs and URL credentials found inside a string. */
export function scrubString(text: string): string {
  let out = text;
  for (const [pattern, replacement] of STRING_MASKS) out = out.replace(pattern, replacement);
  return out;
}

const MAX_DEPTH = 12;

/**
 * Deep copy of `value` safe to log: values under secret-looking keys become
 * '[redacted]', strings are masked with scrubString, errors become plain objects
 * `{ type, message, stack, ...props }` (the shape pino's err serializer prints)
 * with the same scrubbing applied. Cycles and very deep nesting are cut.
 */
export function scrubSecrets(value: unknown): unknown {
  return scrub(value, 0, new WeakSet());
}

function scrub(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (typeof value === 'string') return scrubString(value);
  if (typeof value === 'bigint') return value.toString();
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return '[Circular]';
  if (depth >= MAX_DEPTH) return '[Truncated]';
  seen.add(value);
  try {
    if (value instanceof Error) return scrubError(value, depth, seen);
    // Raw bytes may be key material; their length is all a log reader needs.
    if (ArrayBuffer.isView(value)) return `[binary ${value.byteLength} bytes]`;
    if (value instanceof ArrayBuffer) return `[binary ${value.byteLength} bytes]`;
    if (Array.isArray(value)) return value.map((item) => scrub(item, depth + 1, seen));
    if (value instanceof Map) return scrubEntries(value.entries(), depth, seen, false);
    if (value instanceof Set) return [...value].map((item) => scrub(item, depth + 1, seen));
    if (typeof Headers !== 'undefined' && value instanceof Headers) {
      return scrubEntries(value.entries(), depth, seen, false);
    }
    if (!isPlainObject(value) && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
      // Dates, URLs and the like: log what JSON.stringify would, then scrub that.
      return scrub((value as { toJSON(): unknown }).toJSON(), depth, seen);
    }
    return scrubEntries(Object.entries(value), depth, seen, false);
  } finally {
    seen.delete(value);
  }
}

function scrubEntries(
  entries: Iterable<[unknown, unknown]>,
  depth: number,
  seen: WeakSet<object>,
  isError: boolean,
): Record<string, unknown> {
  const pairs = [...entries].map(([k, v]) => [String(k), v] as const);
  // An error reply `{ code, message }` carries an error code, not an OAuth code.
  const looksLikeErrorShape = isError || pairs.some(([k]) => k === 'message');
  const out: Record<string, unknown> = {};
  for (const [key, v] of pairs) {
    if (key === 'code' && (looksLikeErrorShape || typeof v === 'number')) {
      out[key] = scrub(v, depth + 1, seen);
    } else if (isSecretKey(key)) {
      out[key] = REDACTED;
    } else {
      out[key] = scrub(v, depth + 1, seen);
    }
  }
  return out;
}

function scrubError(err: Error, depth: number, seen: WeakSet<object>): Record<string, unknown> {
  const ctorName = (err as { constructor?: { name?: unknown } }).constructor?.name;
  const out: Record<string, unknown> = {
    type: typeof ctorName === 'string' && ctorName !== '' ? ctorName : err.name,
    message: scrubString(String(err.message)),
  };
  if (typeof err.stack === 'string') out.stack = scrubString(err.stack);
  Object.assign(out, scrubEntries(Object.entries(err), depth, seen, true));
  // `cause` and AggregateError's `errors` are not enumerable but are where the real failure hides.
  if (err.cause !== undefined) out.cause = scrub(err.cause, depth + 1, seen);
  if (err instanceof AggregateError) out.errors = scrub(err.errors, depth + 1, seen);
  return out;
}

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === null || proto === Object.prototype;
}
