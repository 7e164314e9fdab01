/** An MCP server registration's key (the broker makes them: 128 random bits, base64url). */
const KEY = '[A-Za-z0-9_-]{22}';

/** A registration key, whole. */
export const REGISTRATION_KEY = new RegExp(`^${KEY}$`);
/** A registration's client metadata document: its key, then `.json`. */
export const METADATA_DOCUMENT = new RegExp(`^${KEY}\\.json$`);
