/**
 * Where the sign-in page may send the browser afterwards: a path on this gateway only.
 * Anything that could leave the origin (`//evil.example`, `/\evil.example`, `https://…`,
 * control characters browsers strip) is refused: an open redirect would let anyone dress a
 * phishing link in the gateway's name.
 */
export function safeReturnTo(value: string): string | undefined {
  if (value.length === 0 || value.length > 2_000) return undefined;
  if (!value.startsWith('/') || value.startsWith('//')) return undefined;
  if (hasUnsafeCharacter(value)) return undefined;
  const base = new URL('https://gateway.invalid');
  let url: URL;
  try {
    url = new URL(value, base);
  } catch {
    return undefined;
  }
  if (url.origin !== base.origin) return undefined;
  // Normalising dot-segments can turn a safe-looking path into a protocol-relative one
  // (`/.//evil.example` → `//evil.example`): only a path that is already in normal form passes.
  const normalized = `${url.pathname}${url.search}${url.hash}`;
  if (normalized !== value || normalized.startsWith('//')) return undefined;
  return normalized;
}

/** Backslashes are read as slashes by browsers; control characters, space and DEL are stripped or mangled. */
function hasUnsafeCharacter(value: string): boolean {
  for (let i = 0; i < value.length; i += 1) {
    const code = value.charCodeAt(i);
    if (code <= 0x20 || code === 0x7f || code === 0x5c) return true;
  }
  return false;
}
