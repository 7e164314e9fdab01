/**
 * Characters that change how text reads without being seen: C0 and C1 controls, Unicode
 * format characters (Cf: direction overrides and isolates — U+202E shows `moc.live` as
 * `evil.com` — zero-width spaces and joiners, the BOM, tag characters), the line and
 * paragraph separators, spaces other than the plain one (Zs: U+2000–U+200A, U+3000, …),
 * combining marks (Mn: strike-throughs, stacked diacritics), variation selectors, and the
 * blank "letters" (Hangul fillers, the braille blank).
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\u2028\u2029\p{Mn}\uFE00-\uFE0F\u115F\u1160\u3164\uFFA0\u2800]|(?! )\p{Zs}/gu;

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
