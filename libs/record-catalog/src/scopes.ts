import { dataScopes } from '@context-gateway/integration-catalog';

import { isRecordType, type RecordTypeName } from './record-types.js';

/**
 * For each integration, which record types each of its data scopes lets an app read, as the
 * integration's manifest declares it (libs/integration-catalog). A data scope is a read
 * capability (`<integration>:read:<what>`); the Personal Server answers a query for type T
 * only if one of the grant's scopes maps to T. Types that no scope maps to are never readable
 * by apps. A manifest naming a type this catalog does not define stops every service that
 * loads it: an app must never be promised a type nothing can hold.
 */
export const INTEGRATION_SCOPES: Readonly<Record<string, Readonly<Record<string, readonly RecordTypeName[]>>>> =
  Object.fromEntries(
    Object.entries(dataScopes()).map(([integration, scopes]) => [
      integration,
      Object.fromEntries(
        Object.entries(scopes).map(([scope, types]) => {
          const unknown = types.filter((t) => !isRecordType(t));
          if (unknown.length > 0)
            throw new Error(
              `integration ${integration}: scope ${scope} names unknown record types ${unknown.join(', ')}`,
            );
          return [scope, types as RecordTypeName[]];
        }),
      ),
    ]),
  );

/** The record types a set of granted scopes covers (unknown scopes cover nothing). */
export function typesForScopes(integration: string, scopes: Iterable<string>): Set<RecordTypeName> {
  const mapping = INTEGRATION_SCOPES[integration] ?? {};
  const types = new Set<RecordTypeName>();
  for (const scope of scopes) for (const type of mapping[scope] ?? []) types.add(type);
  return types;
}

/** The record types an integration can produce at all (what sync may write). */
export function typesForIntegration(integration: string): Set<RecordTypeName> {
  return typesForScopes(integration, Object.keys(INTEGRATION_SCOPES[integration] ?? {}));
}

/** The scopes of an integration that cover `type` (the read capabilities a policy check asks about). */
export function scopesForType(integration: string, type: string): string[] {
  return Object.entries(INTEGRATION_SCOPES[integration] ?? {})
    .filter(([, types]) => types.includes(type))
    .map(([scope]) => scope);
}
