import { createHash } from 'node:crypto';

/** A grant the person allows: who may read what, signed once (the nonce), until when. */
export interface GrantStatement {
  userId: string;
  orgId: string;
  applicationId: string;
  integration: string;
  scopes: readonly string[];
  nonce: string;
  notAfter: Date;
}

/** A passkey the person adds, endorsed by one their Personal Server already trusts. */
export interface PasskeyStatement {
  userId: string;
  credentialId: string;
  /** The new passkey's COSE public key. */
  publicKey: Uint8Array;
  nonce: string;
  notAfter: Date;
}

function challengeOf(parts: readonly unknown[]): string {
  // A JSON array of strings, numbers and sorted string arrays has one serialization: the
  // same statement always hashes the same, in any language that writes JSON arrays.
  return createHash('sha256').update(JSON.stringify(parts), 'utf8').digest('base64url');
}

/**
 * The WebAuthn challenge (base64url) a person signs to allow a grant: SHA-256 of what the
 * grant says. The consent page asks the passkey to sign it; the Personal Server rebuilds it
 * from the grant it is asked to register, so an assertion fits exactly one grant's terms.
 */
export function grantChallenge(s: GrantStatement): string {
  return challengeOf([
    'context-gateway.grant.v1',
    s.userId,
    s.orgId,
    s.applicationId,
    s.integration,
    [...s.scopes].sort(),
    s.nonce,
    s.notAfter.getTime(),
  ]);
}

/** The WebAuthn challenge a pinned passkey signs to endorse a new one (its id and key). */
export function passkeyChallenge(s: PasskeyStatement): string {
  return challengeOf([
    'context-gateway.passkey.v1',
    s.userId,
    s.credentialId,
    createHash('sha256').update(s.publicKey).digest('base64url'),
    s.nonce,
    s.notAfter.getTime(),
  ]);
}

/** One MCP call a person approves: this application, this operation, these exact arguments, once. */
export interface ApprovalStatement {
  userId: string;
  orgId: string;
  applicationId: string;
  /** `<integration>:<tool>` (resources and prompts: `<integration>:tools`). */
  capability: string;
  /** The MCP operation: `tools/call`, `resources/read` or `prompts/get`. */
  method: string;
  /** What the agent named, as the gateway lists it: the tool, the resource URI or the prompt. */
  name: string;
  /** SHA-256 (base64url) of the canonical JSON (RFC 8785) of method, name and arguments: `callHash`. */
  callHash: string;
  nonce: string;
  notAfter: Date;
}

/**
 * The WebAuthn challenge a person signs to approve one MCP call (gateway mode): the hash of
 * who asks, for whom, which capability, which operation on which name and which arguments.
 * A signature over it approves exactly that call; another operation (a resource read for a
 * tool call), other arguments, another application or another person hash otherwise.
 */
export function approvalChallenge(s: ApprovalStatement): string {
  return challengeOf([
    'context-gateway.approval.v2',
    s.userId,
    s.orgId,
    s.applicationId,
    s.capability,
    s.method,
    s.name,
    s.callHash,
    s.nonce,
    s.notAfter.getTime(),
  ]);
}
