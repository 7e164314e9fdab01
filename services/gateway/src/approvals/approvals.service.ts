import { createHash, randomBytes, randomUUID } from 'node:crypto';

import { type Clock } from '@context-gateway/clock';
import { approvalChallenge, type ApprovalStatement } from '@context-gateway/crypto';
import { AppError } from '@context-gateway/errors';

import type { AuditRecorder } from '../audit/audit-recorder.js';
import { type ApprovalKey, type ApprovalRow, type ApprovalsRepository } from './approvals.repository.js';

/**
 * The passkeys that can approve: those the person's Personal Server pinned, which it alone
 * verifies (ps.v1.check_approval). identity's list would not do: anyone holding the person's
 * session can add a passkey there, but only an already pinned one can get another pinned.
 */
export abstract class ApprovalPasskeys {
  /** The credential ids the page offers (empty: nothing pinned, so nothing can approve). */
  abstract trusted(userId: string): Promise<string[]>;
  /** The signer's credential id once `assertionJson` verifies over the statement; else passkey_signature_invalid. */
  abstract verify(statement: ApprovalStatement, assertionJson: string): Promise<string>;
}

/** An MCP call an `approval_required` rule holds. */
export interface HeldCall extends Omit<ApprovalKey, 'callHash'> {
  arguments: Record<string, unknown> | undefined;
  /** The tool (or resource, prompt) as its server describes it, for the page: title, description, annotations. */
  tool: { title?: string; description?: string; annotations?: Record<string, unknown> };
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
/** ps.v1.check_approval's limits (proto/src/catalog/personal-server.ts). */
const MAX_NAME_LENGTH = 2048;
const MAX_CAPABILITY_LENGTH = 300;

/**
 * RFC 8785 canonical JSON of a JSON value (keys sorted by UTF-16 code units, no whitespace),
 * written by hand: JSON.stringify would put integer-like keys first whatever the order.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record)
    .filter((k) => record[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(',')}}`;
}

/**
 * SHA-256 (base64url) of the call's canonical JSON — its operation, the name the agent used
 * and its arguments (absent: `{}`) — so an approval of a resource read is never one of a tool
 * call that happens to share its capability and arguments.
 */
export function callHash(call: Pick<HeldCall, 'method' | 'name' | 'arguments'>): string {
  return createHash('sha256')
    .update(canonicalJson({ method: call.method, name: call.name, arguments: call.arguments ?? {} }), 'utf8')
    .digest('base64url');
}

/**
 * Approvals of risky MCP calls (gateway mode). A call an `approval_required` rule holds is
 * bound to (org, application, person, capability, method, name, callHash) and waits; the
 * person approves or declines it on the approval page, an approval being the assertion of a
 * passkey their Personal Server pinned over exactly that statement (libs/crypto
 * approvalChallenge). The retried call with the same key spends the answer once. Expired,
 * replayed, another person's or another call's approvals are refused with stable codes and
 * change nothing. Every answer is in the audit trail (`consent`, the person as actor).
 */
export class ApprovalsService {
  constructor(
    private readonly repository: ApprovalsRepository,
    private readonly passkeys: ApprovalPasskeys,
    private readonly recorder: Pick<AuditRecorder, 'recordIntent' | 'recordOutcome'>,
    private readonly clock: Clock,
    private readonly options: {
      publicUrl: string;
      ttlMs: number;
      /** Told when a committed answer's audit outcome could not be stored (logged by the module). */
      onOutcomeLost?: (approvalId: string, error: unknown) => void;
    },
  ) {}

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
      method: call.method,
      name: call.name,
      callHash: callHash(call),
    };
    const now = this.clock.date();
    const spent = await this.repository.consume(key, now);
    if (spent)
      return spent.status === 'approved'
        ? { state: 'approved', approvalId: spent.id }
        : { state: 'declined', approvalId: spent.id };
    const waiting = await this.repository.pending(key, now);
    if (waiting) return { state: 'pending', approvalId: waiting.id, url: this.url(waiting.id) };
    // What the Personal Server's check_approval accepts (proto catalog): a longer name could be held but never approved.
    if (call.name.length > MAX_NAME_LENGTH || call.capability.length > MAX_CAPABILITY_LENGTH)
      throw new AppError('validation_failed', 'The name of a call that needs approval is too long to approve', [
        { path: 'name', message: `at most ${MAX_NAME_LENGTH} characters` },
      ]);
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
    return { row, challenge: this.challenge(row), credentialIds: await this.passkeys.trusted(userId) };
  }

  /**
   * The person's answer. Approve needs the assertion (user verified) of a passkey their
   * Personal Server pinned over this request's statement; decline needs only their session.
   * Either is final. The intent is in the audit trail before anything is decided (an answer
   * whose intent the trail cannot take is not given); the outcome, naming the request and
   * (approved) the passkey that signed, follows the committed decision. If the trail cannot
   * take that outcome, the decision still stands — it is committed and the agent's retry will
   * act on it — so the failure is logged, never shown to the person as a refusal.
   */
  async decide(
    id: string,
    userId: string,
    decision: 'approve' | 'decline',
    assertionJson?: string,
  ): Promise<ApprovalRow> {
    const row = await this.open(id, userId);
    const intent = await this.recorder.recordIntent({
      action: 'consent',
      orgId: row.orgId,
      applicationId: row.applicationId,
      userId,
      integration: row.capability.split(':')[0] ?? '',
      capability: row.capability,
      actorKind: 'user_session',
      actorId: userId,
      approvalId: row.id,
      operation: 'POST /v1/approvals/{approvalId}',
    });
    let signedBy: string | undefined;
    try {
      if (decision === 'approve') signedBy = await this.verify(row, assertionJson);
      const status = decision === 'approve' ? 'approved' : 'declined';
      // Checked again in the UPDATE: a replayed post or a concurrent one changes nothing.
      if (!(await this.repository.decide(id, status, this.clock.date(), signedBy))) throw alreadyDecided();
    } catch (error) {
      await this.recorder
        .recordOutcome(intent, { outcome: 'error', errorCode: AppError.from(error).code })
        .catch(() => undefined);
      throw error;
    }
    // The signer is named as the resource the answer rests on (`passkey:<credential id>`).
    await this.recorder
      .recordOutcome(
        { ...intent, record: { ...intent.record, ...(signedBy ? { resource: `passkey:${signedBy}` } : {}) } },
        decision === 'approve' ? { outcome: 'allowed' } : { outcome: 'denied', errorCode: 'approval_declined' },
      )
      .catch((error: unknown) => this.options.onOutcomeLost?.(row.id, error));
    return { ...row, status: decision === 'approve' ? 'approved' : 'declined', signedBy: signedBy ?? null };
  }

  private async open(id: string, userId: string): Promise<ApprovalRow> {
    const row = await this.repository.find(id);
    // Another person's request is as unknown as a missing one: its id tells them nothing.
    if (!row || row.userId !== userId) throw new AppError('approval_not_found', 'No such approval request');
    if (row.status !== 'pending') throw alreadyDecided();
    if (row.expiresAt.getTime() <= this.clock.now())
      throw new AppError('approval_expired', 'This approval request has expired: ask the agent to try again');
    return row;
  }

  private statement(row: ApprovalRow): ApprovalStatement {
    return {
      userId: row.userId,
      orgId: row.orgId,
      applicationId: row.applicationId,
      capability: row.capability,
      method: row.method,
      name: row.name,
      callHash: row.callHash,
      nonce: row.nonce,
      notAfter: row.expiresAt,
    };
  }

  private challenge(row: ApprovalRow): string {
    return approvalChallenge(this.statement(row));
  }

  /** The signer's credential id, once the Personal Server verified the assertion over this request's statement. */
  private async verify(row: ApprovalRow, assertionJson: string | undefined): Promise<string> {
    if (!assertionJson)
      throw new AppError('passkey_signature_invalid', 'Approving needs your passkey to sign this call');
    return this.passkeys.verify(this.statement(row), assertionJson);
  }

  private url(id: string): string {
    return new URL(`/v1/approvals/${id}`, this.options.publicUrl).toString();
  }
}

function alreadyDecided(): AppError {
  return new AppError('approval_already_decided', 'This approval request was already approved, declined or used');
}
