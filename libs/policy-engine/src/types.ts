/** The three policy layers. Every one of them must allow a request (ARCHITECTURE.md, "Policy"). */
export type Layer = 'org' | 'user' | 'application';

/**
 * The order in which layers are reported: when several layers refuse, the first one in this
 * order is the one named in `decidedBy` (and thus in the `policy_denied` error).
 */
export const LAYERS: readonly Layer[] = ['org', 'user', 'application'];

type PolicyEffect = 'allow' | 'deny';

/** A whole integration (`github`) or one capability (`github:create_issue`). */
type PolicyTarget = { integration: string } | { capability: string };

export interface PolicyRule {
  /** Stable id, quoted back in decisions and audit events; unique within a rule set. */
  id: string;
  layer: Layer;
  /** The org id, user id or application id this rule belongs to, depending on `layer`. */
  subject: string;
  effect: PolicyEffect;
  target: PolicyTarget;
  /**
   * Optional resource constraint: exact strings, or prefixes written with one trailing `*`
   * (`repo:acme/*`). Absent = any resource, and also requests without one. See README.md.
   */
  resources?: readonly string[];
  /**
   * Optional: the rule applies only to requests made by this application. A user's consent
   * (a grant) is given to one app, so grant-derived user-layer allows carry it; without it
   * a user who consented for app A would also have "allowed" app B.
   */
  application?: string;
  /**
   * Optional, allow rules of the org and user layers only: a call this rule allows still
   * waits for the person's passkey approval of that exact call (gateway mode). It never
   * allows anything by itself and never overrides a deny.
   */
  approvalRequired?: boolean;
}

/** One capability invocation: application X, acting for user U of org O, wants capability C. */
export interface PolicyRequest {
  orgId: string;
  applicationId: string;
  userId: string;
  capability: string;
  /** The concrete resource touched (`repo:acme/frontend`); absent or '' when none is named. */
  resource?: string;
}

export type DecisionReason = 'deny_rule' | 'no_allow' | 'allowed' | 'unknown_capability';

/** The rules of one layer that decided that layer's verdict (denies when any matched, else allows). */
export interface LayerMatch {
  readonly layer: Layer;
  readonly ruleIds: readonly string[];
  readonly effect: PolicyEffect;
  /**
   * Of an allowing layer: its allow rules that ask for the person's approval of this call. A
   * resource-scoped one asks also when the call names no resource (like a scoped deny), though
   * it allows only the resources it names.
   */
  readonly approvalRuleIds?: readonly string[];
}

/** An allowed decision whose call waits for the person's approval: the first layer asking, and its rules. */
export interface ApprovalRequirement {
  readonly layer: Layer;
  readonly ruleIds: readonly string[];
}

export interface Decision {
  readonly allowed: boolean;
  /** The layer that refused (first in LAYERS order), or null when allowed or the capability is unknown. */
  readonly decidedBy: Layer | null;
  readonly reason: DecisionReason;
  /** One entry per layer that had matching rules, in LAYERS order. */
  readonly matched: readonly LayerMatch[];
  /** Allowed decisions only: set when an org or user allow rule asks for approval. */
  readonly approval?: ApprovalRequirement;
}
