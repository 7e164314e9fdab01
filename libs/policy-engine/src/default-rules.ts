import type { PolicyRule } from './types.js';

/**
 * The secure defaults, as rules. Nothing is allowed unless each layer says so, and each
 * layer's "yes" comes from something a person already did: the org admin enabled an
 * integration, the developer declared what the app uses, the user consented to a grant.
 * Rule ids are derived from their source so a decision can be traced back to it.
 */

/** An org lets its applications use the integrations it enabled, and nothing else. */
export function orgIntegrationRules(orgId: string, enabledIntegrations: readonly string[]): PolicyRule[] {
  return unique(enabledIntegrations).map((integration) => ({
    id: `org:${orgId}:integration:${integration}`,
    layer: 'org',
    subject: orgId,
    effect: 'allow',
    target: { integration },
  }));
}

export interface ApplicationDeclaration {
  applicationId: string;
  /** Whole integrations the app declared (any capability of them). */
  integrations?: readonly string[];
  /** Single capabilities the app declared. */
  capabilities?: readonly string[];
}

/** An application may do what it declared at registration, and nothing else. */
export function applicationDeclarationRules(app: ApplicationDeclaration): PolicyRule[] {
  const subject = app.applicationId;
  return [
    ...unique(app.integrations ?? []).map((integration): PolicyRule => ({
      id: `app:${subject}:integration:${integration}`,
      layer: 'application',
      subject,
      effect: 'allow',
      target: { integration },
    })),
    ...unique(app.capabilities ?? []).map((capability): PolicyRule => ({
      id: `app:${subject}:capability:${capability}`,
      layer: 'application',
      subject,
      effect: 'allow',
      target: { capability },
    })),
  ];
}

export interface GrantConsent {
  grantId: string;
  userId: string;
  /** The app the user consented to; the allow is scoped to it alone. */
  applicationId: string;
  /** The consented scopes/capabilities, e.g. `spotify:read:playlists`. */
  scopes: readonly string[];
}

/** A user allows exactly the scopes they consented to, for the one app they consented to. */
export function grantRules(grant: GrantConsent): PolicyRule[] {
  return unique(grant.scopes).map((capability) => ({
    id: `grant:${grant.grantId}:${capability}`,
    layer: 'user',
    subject: grant.userId,
    effect: 'allow',
    target: { capability },
    application: grant.applicationId,
  }));
}

/** Repeats in a declaration or grant mean nothing, and would collide as rule ids. */
function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}
