/**
 * A compiled resource constraint. Patterns are exact strings or a prefix followed by one
 * trailing `*`; nothing richer, so that an admin can tell at a glance what a rule covers
 * and the Cedar oracle can express it with `==` and `like`.
 */
export interface ResourceMatcher {
  readonly exact: ReadonlySet<string>;
  readonly prefixes: readonly string[];
}

export function compileResourcePatterns(patterns: readonly string[]): ResourceMatcher {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const pattern of patterns) {
    if (pattern.endsWith('*')) prefixes.push(pattern.slice(0, -1));
    else exact.add(pattern);
  }
  return { exact, prefixes };
}

export function matchesResource(matcher: ResourceMatcher, resource: string): boolean {
  if (matcher.exact.has(resource)) return true;
  for (const prefix of matcher.prefixes) if (resource.startsWith(prefix)) return true;
  return false;
}

/** Why a pattern is rejected, or undefined when it is fine. */
export function resourcePatternProblem(pattern: unknown): string | undefined {
  if (typeof pattern !== 'string' || pattern.length === 0) return 'must be a non-empty string';
  const star = pattern.indexOf('*');
  if (star !== -1 && star !== pattern.length - 1) return "'*' is only allowed as the last character";
  return undefined;
}
