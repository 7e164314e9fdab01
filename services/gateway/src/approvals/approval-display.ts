/**
 * Characters that change how text reads without being seen: C0 and C1 controls, Unicode
 * format characters (Cf: direction overrides and isolates — U+202E shows `moc.live` as
 * `evil.com` — zero-width spaces and joiners, the BOM, tag characters) and the line and
 * paragraph separators.
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\u2028\u2029]/gu;

/** `\uXXXX` (a surrogate pair beyond the BMP): how JSON writes the character out. */
function escaped(c: string): string {
  let out = '';
  for (let i = 0; i < c.length; i++) out += `\\u${c.charCodeAt(i).toString(16).toUpperCase().padStart(4, '0')}`;
  return out;
}

/** A value the agent or an upstream server chose, as the approval page shows it: every invisible character written out. */
export function escapeInvisible(text: string): string {
  return text.replace(INVISIBLE, escaped);
}

/**
 * The arguments as the approval page shows them: pretty JSON whose keys and strings have
 * their invisible characters written as `\uXXXX`. The copy is still the JSON of the very same
 * values (JSON reads `\u202E` as U+202E), while the hash the person signs is over the values.
 */
export function displayArguments(canonical: string): string {
  // JSON.stringify escapes C0 controls inside strings itself: a raw one left here is the
  // layout's own line break, which stays.
  return JSON.stringify(JSON.parse(canonical), null, 2).replace(INVISIBLE, (c) => (c === '\n' ? c : escaped(c)));
}
