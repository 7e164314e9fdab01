/**
 * A realistic corpus for the benchmark: 50 orgs, 1,000 apps, 10,000 users, built only
 * from the secure-default helpers plus the deny rules admins and users actually write.
 * Deterministic (seeded), so runs are comparable.
 */
import {
  applicationDeclarationRules,
  grantRules,
  orgIntegrationRules,
  type PolicyRequest,
  type PolicyRule,
} from '../src/index.js';
import { seededRandom } from '../test-support/random-policies.js';

export interface Corpus {
  catalog: string[];
  rules: PolicyRule[];
  rulesByOrg: Map<string, PolicyRule[]>;
  requests: PolicyRequest[];
}

const OPERATIONS = [
  'read:items',
  'read:profile',
  'read:history',
  'create_item',
  'update_item',
  'delete_item',
  'search',
  'export',
];

export function buildCorpus(
  options = { orgs: 50, appsPerOrg: 20, usersPerOrg: 200, integrations: 30, requests: 200_000, seed: 7 },
): Corpus {
  const random = seededRandom(options.seed);
  const pick = <T>(items: readonly T[]): T => {
    const item = items[Math.floor(random() * items.length)];
    if (item === undefined) throw new Error('picked from an empty list');
    return item;
  };
  const sample = <T>(items: readonly T[], n: number): T[] => [...items].sort(() => random() - 0.5).slice(0, n);
  const integrations = Array.from({ length: options.integrations }, (_, i) => `svc${i}`);
  const catalog = integrations.flatMap((i) => OPERATIONS.map((op) => `${i}:${op}`));
  const capabilitiesOf = (integration: string) => OPERATIONS.map((op) => `${integration}:${op}`);

  const rules: PolicyRule[] = [];
  const rulesByOrg = new Map<string, PolicyRule[]>();
  // What each user may legitimately do, to draw mostly-allowed traffic from.
  const legit: { orgId: string; userId: string; applicationId: string; scopes: string[] }[] = [];
  const orgUsers = new Map<string, string[]>();
  const orgApps = new Map<string, string[]>();

  for (let o = 0; o < options.orgs; o++) {
    const orgId = `org${o}`;
    const orgRules: PolicyRule[] = [];
    const enabled = sample(integrations, 12);
    orgRules.push(...orgIntegrationRules(orgId, enabled));
    // Admins switch off destructive operations and fence off sensitive resources.
    for (const integration of sample(enabled, 8)) {
      orgRules.push({
        id: `${orgId}:deny:${integration}:delete`,
        layer: 'org',
        subject: orgId,
        effect: 'deny',
        target: { capability: `${integration}:delete_item` },
      });
    }
    for (const integration of sample(enabled, 4)) {
      orgRules.push({
        id: `${orgId}:deny:${integration}:secret`,
        layer: 'org',
        subject: orgId,
        effect: 'deny',
        target: { integration },
        resources: [`res:${orgId}/secret/*`],
      });
    }
    const apps = Array.from({ length: options.appsPerOrg }, (_, a) => `${orgId}-app${a}`);
    const declared = new Map<string, string[]>();
    for (const applicationId of apps) {
      const whole = sample(enabled, 1 + Math.floor(random() * 2));
      const single = sample(catalog, 3 + Math.floor(random() * 4));
      orgRules.push(...applicationDeclarationRules({ applicationId, integrations: whole, capabilities: single }));
      declared.set(applicationId, [...new Set([...whole.flatMap(capabilitiesOf), ...single])]);
    }
    const users = Array.from({ length: options.usersPerOrg }, (_, u) => `${orgId}-user${u}`);
    for (const userId of users) {
      const applicationId = pick(apps);
      const scopes = sample(present(declared.get(applicationId), applicationId), 2);
      orgRules.push(...grantRules({ grantId: `${userId}-g0`, userId, applicationId, scopes }));
      legit.push({ orgId, userId, applicationId, scopes });
      if (random() < 0.1) {
        const scope = present(scopes[0], `${userId}'s first scope`);
        orgRules.push({
          id: `${userId}:deny:${scope}`,
          layer: 'user',
          subject: userId,
          effect: 'deny',
          target: { capability: scope },
          resources: ['res:private/*'],
        });
      }
    }
    rulesByOrg.set(orgId, orgRules);
    orgUsers.set(orgId, users);
    orgApps.set(orgId, apps);
    rules.push(...orgRules);
  }

  // Traffic: mostly users' consented scopes through their app (some on resources, a few
  // on fenced ones), the rest apps probing what they were not granted, and a trickle of
  // capabilities the catalog does not know.
  const requests: PolicyRequest[] = [];
  for (let i = 0; i < options.requests; i++) {
    const who = pick(legit);
    const roll = random();
    const base = { orgId: who.orgId, userId: who.userId, applicationId: who.applicationId };
    if (roll < 0.7) {
      const resource =
        random() < 0.5
          ? undefined
          : random() < 0.9
            ? `res:${who.orgId}/repo${Math.floor(random() * 50)}`
            : `res:${who.orgId}/secret/x`;
      requests.push({ ...base, capability: pick(who.scopes), ...(resource ? { resource } : {}) });
    } else if (roll < 0.98) {
      requests.push({
        ...base,
        applicationId: pick(present(orgApps.get(who.orgId), who.orgId)),
        capability: pick(catalog),
      });
    } else {
      requests.push({ ...base, capability: `${pick(integrations)}:not_in_catalog` });
    }
  }
  // Requests arrive decoded from the wire: their strings are fresh copies, never the very
  // objects the rules hold, so lookups cannot win on pointer equality.
  return { catalog, rules, rulesByOrg, requests: JSON.parse(JSON.stringify(requests)) as PolicyRequest[] };
}

/** A value the corpus built a moment ago; missing means a bug in the builder. */
function present<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`corpus: nothing for ${what}`);
  return value;
}
