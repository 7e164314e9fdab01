/**
 * The capabilities policy knows about without anyone naming them: what the built-in
 * integrations offer (data scopes are read capabilities; tools are `<integration>:<tool>`).
 * An integration-wide rule (`github`) covers exactly these plus any capability of that
 * integration that a rule, an application declaration or a grant names explicitly (those
 * come from the broker's catalog and identity's validation). Anything else is unknown and
 * denied by the engine, whatever the rules say.
 */
export const BUILTIN_CAPABILITIES: readonly string[] = [
  'github:read:profile',
  'github:read:repos',
  'github:read:issues',
  'github:read:stars',
  'github:read:follows',
  'github:create_issue',
  'github:delete_repository',
  'github:create_pull_request',
  'spotify:read:profile',
  'spotify:read:library',
  'spotify:read:playlists',
  'spotify:read:history',
  'spotify:read:follows',
  'netflix:read:profile',
  'netflix:read:history',
  'netflix:read:list',
  'demo:read:profile',
  'demo:read:notes',
  'demo-keys:read:notes',
  'slack:send_message',
  'slack:read:channels',
];
