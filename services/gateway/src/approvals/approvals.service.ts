import { createHash, randomBytes, randomUUID } from 'node:crypto';

import { type Clock } from '@context-gateway/clock';
import { approvalChallenge } from '@context-gateway/crypto';
import { AppError } from '@context-gateway/errors';
import { type AuthenticationResponseJSON, verifyAuthenticationResponse } from '@simplewebauthn/server';

import { type ApprovalKey, type ApprovalRow, type ApprovalsRepository } from './approvals.repository.js';

/** The person's passkeys as identity holds them (the only source of their public keys). */
export abstract class ApprovalPasskeys {
  abstract passkeys(userId: string): Promise<{ credentialId: string; publicKey: Uint8Array }[]>;
}

/** A tool call an `approval_required` rule holds. */
export interface HeldCall extends Omit<ApprovalKey, 'argumentsHash'> {
  arguments: Record<string, unknown> | undefined;
  /** The tool as its server describes it, for the page: title, description, annotations. */
  tool: { name: string; title?: string; description?: string; annotations?: Record<string, unknown> };
}

/** What the retried call learns: go ahead (and name the approval), the person said no, or still waiting. */
export type Settlement =
  | { state: 'approved'; approvalId: string }
  | { state: 'declined'; approvalId: string }
  | { state: 'pending'; approvalId: string; url: string };

/** What the approval page shows and signs. */
export interface ApprovalView {
  row: ApprovalRow;
  /** base64url: the challenge the person's passkey signs to approve exactly this call. */
  challenge: string;
  /** Their passkeys' credential ids (the page offers only those). */
  credentialIds: string[];
}

/** A day past expiry a request is deleted: nothing reads it any more. */
const PURGE_AFTER_MS = 24 * 60 * 60_000;
/** The arguments the page can show and the store keeps; bigger calls cannot be approved. */
const MAX_ARGUMENTS_BYTES = 64 * 1024;

/**
 * RFC 8785 canonical JSON of a JSON value (keys sorted by UTF-16 code units, no whitespace),
 * written by hand: JSON.stringify would put integer-like keys first whatever the order.
 */
function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record)
    .filter((k) => record[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(',')}}`;
}

/** SHA-256 (base64url) of the arguments' canonical JSON: absent arguments are `{}`. */
export function argumentsHash(args: Record<string, unknown> | undefined): string {
  return createHash('sha256')
    .update(canonicalJson(args ?? {}), 'utf8')
    .digest('base64url');
}

/**
 * Approvals of risky tool calls (gateway mode). A call an `approval_required` rule holds is
 * bound to (org, application, person, capability, argumentsHash) and waits; the person
 * approves or declines it on the approval page, an approval being their passkey's assertion
 * over exactly that statement (libs/crypto approvalChallenge). The retried call with the
 * same hash spends the answer once. Expired, replayed, another person's or another call's
 * approvals are refused with stable codes and change nothing.
 */
export class ApprovalsService {
  readonly #origin: string;
  readonly #rpId: string;

  constructor(
    private readonly repository: ApprovalsRepository,
    private readonly passkeys: ApprovalPasskeys,
    private readonly clock: Clock,
    private readonly options: { publicUrl: string; ttlMs: number },
  ) {
    const url = new URL(options.publicUrl);
    this.#origin = url.origin;
    this.#rpId = url.hostname;
  }

  /**
   * For the held call: an unused answer of the person to exactly this call is spent (approved
   * or declined), else the request waiting for them (made now if there is none) and its link.
   */
  async settle(call: HeldCall): Promise<Settlement> {
    const canonical = canonicalJson(call.arguments ?? {});
    const key: ApprovalKey = {
      orgId: call.orgId,
      applicationId: call.applicationId,
      userId: call.userId,
      capability: call.capability,
      argumentsHash: argumentsHash(call.arguments),
    };
    const now = this.clock.date();
    const spent = await this.repository.consume(key, now);
    if (spent)
      return spent.status === 'approved'
        ? { state: 'approved', approvalId: spent.id }
        : { state: 'declined', approvalId: spent.id };
    const waiting = await this.repository.pending(key, now);
    if (waiting) return { state: 'pending', approvalId: waiting.id, url: this.url(waiting.id) };
    if (Buffer.byteLength(canonical, 'utf8') > MAX_ARGUMENTS_BYTES)
      throw new AppError('validation_failed', 'The arguments of a call that needs approval are limited to 64 KiB', [
        { path: 'arguments', message: 'too large to approve' },
      ]);
    const id = randomUUID();
    await this.repository.purge(new Date(now.getTime() - PURGE_AFTER_MS));
    await this.repository.insert({
      id,
      ...key,
      arguments: canonical,
      tool: JSON.stringify(call.tool),
      nonce: randomBytes(16).toString('base64url'),
      expiresAt: new Date(now.getTime() + this.options.ttlMs),
      createdAt: now,
    });
    return { state: 'pending', approvalId: id, url: this.url(id) };
  }

  /** The request as its person sees it before deciding (refused for anyone else, or once decided or expired). */
  async view(id: string, userId: string): Promise<ApprovalView> {
    const row = await this.open(id, userId);
    const passkeys = await this.passkeys.passkeys(userId);
    return { row, challenge: this.challenge(row), credentialIds: passkeys.map((p) => p.credentialId) };
  }

  /**
   * The person's answer. Approve needs their passkey's assertion (user verified) over this
   * request's statement; decline needs only their session. Either is final.
   */
  async decide(
    id: string,
    userId: string,
    decision: 'approve' | 'decline',
    assertionJson?: string,
  ): Promise<ApprovalRow> {
    const row = await this.open(id, userId);
    let signedBy: string | undefined;
    if (decision === 'approve') signedBy = await this.verify(row, assertionJson);
    const status = decision === 'approve' ? 'approved' : 'declined';
    // Checked again in the UPDATE: a replayed post or a concurrent one changes nothing.
    if (!(await this.repository.decide(id, status, this.clock.date(), signedBy))) throw alreadyDecided();
    return { ...row, status };
  }

  private async open(id: string, userId: string): Promise<ApprovalRow> {
    const row = await this.repository.find(id);
    if (!row) throw new AppError('approval_not_found', 'No such approval request');
    if (row.userId !== userId)
      throw new AppError('approval_other_person', 'This approval request is for another person');
    if (row.status !== 'pending') throw alreadyDecided();
    if (row.expiresAt.getTime() <= this.clock.now())
      throw new AppError('approval_expired', 'This approval request has expired: ask the agent to try again');
    return row;
  }

  private challenge(row: ApprovalRow): string {
    return approvalChallenge({
      userId: row.userId,
      orgId: row.orgId,
      applicationId: row.applicationId,
      capability: row.capability,
      argumentsHash: row.argumentsHash,
      nonce: row.nonce,
      notAfter: row.expiresAt,
    });
  }

  /** The signer's credential id, once the assertion verifies for this request's challenge with a passkey of the person's. */
  private async verify(row: ApprovalRow, assertionJson: string | undefined): Promise<string> {
    const refused = (why: string) => new AppError('passkey_signature_invalid', why);
    if (!assertionJson) throw refused('Approving needs your passkey to sign this call');
    let response: AuthenticationResponseJSON;
    try {
      response = JSON.parse(assertionJson) as AuthenticationResponseJSON;
    } catch {
      throw refused('The passkey signature is not JSON');
    }
    const passkey = (await this.passkeys.passkeys(row.userId)).find((p) => p.credentialId === response?.id);
    if (!passkey) throw refused('The signature is not by a passkey of yours');
    try {
      const { verified } = await verifyAuthenticationResponse({
        response,
        expectedChallenge: this.challenge(row),
        expectedOrigin: this.#origin,
        expectedRPID: this.#rpId,
        // identity keeps the counter of sign-ins; synced passkeys leave it at zero anyway.
        credential: { id: passkey.credentialId, publicKey: new Uint8Array(passkey.publicKey), counter: 0 },
        requireUserVerification: true,
      });
      if (!verified) throw refused('The passkey signature does not verify');
    } catch (error) {
      if (error instanceof AppError) throw error;
      throw refused(`The passkey signature does not verify for this call: ${(error as Error).message}`);
    }
    return passkey.credentialId;
  }

  private url(id: string): string {
    return new URL(`/v1/approvals/${id}`, this.options.publicUrl).toString();
  }
}

function alreadyDecided(): AppError {
  return new AppError('approval_already_decided', 'This approval request was already approved, declined or used');
}
