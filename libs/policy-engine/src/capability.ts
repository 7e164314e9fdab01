/**
 * Capabilities are `<integration>:<operation>`; the operation may itself contain colons
 * (`spotify:read:playlists`), so the integration is everything before the first colon.
 */
export function integrationOf(capability: string): string | undefined {
  const colon = capability.indexOf(':');
  if (colon <= 0 || colon === capability.length - 1) return undefined;
  return capability.slice(0, colon);
}

export function isCapability(value: string): boolean {
  return integrationOf(value) !== undefined;
}

export function isIntegration(value: string): boolean {
  return value.length > 0 && !value.includes(':');
}
