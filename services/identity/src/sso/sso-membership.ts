/** What decides membership: the organization's email domains and required claims. */
export interface MembershipRule {
  emailDomains: string[];
  requiredClaims: unknown;
}

/**
 * Whether the IdP's claims make the person a member. Every required claim must hold (a
 * string claim equal to the value, or an array claim containing it). With email domains
 * set, the address must also be verified by the IdP (`email_verified: true`) and end in
 * one of them: an unverified address proves nothing about who controls it.
 */
export function isMember(claims: Record<string, unknown>, rule: MembershipRule): boolean {
  const required = (rule.requiredClaims ?? {}) as Record<string, string>;
  for (const [name, value] of Object.entries(required)) {
    const actual = Object.hasOwn(claims, name) ? claims[name] : undefined;
    const holds = Array.isArray(actual) ? actual.includes(value) : actual === value;
    if (!holds) return false;
  }
  if (rule.emailDomains.length === 0) return true;
  const email = claims['email'];
  if (typeof email !== 'string' || claims['email_verified'] !== true) return false;
  const at = email.lastIndexOf('@');
  return at > 0 && rule.emailDomains.includes(email.slice(at + 1).toLowerCase());
}
