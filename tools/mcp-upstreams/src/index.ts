export { type RunningConformanceMcp, startConformanceMcp } from './conformance-mcp.js';
export { type GithubMcpOptions, type RunningGithubMcp, startGithubMcp } from './github-mcp.js';
export { type OAuthMcpOptions, type RunningOAuthMcp, startOAuthMcp } from './oauth-mcp.js';
export { authorizeAtOAuthMcp } from './oauth-mcp-login.js';
export { type RunningSessionMcp, startSessionMcp } from './session-mcp.js';
export {
  type OAuthUpstreamProcess,
  spawnConformanceMcp,
  type SpawnedMcp,
  spawnGithubMcp,
  spawnOAuthMcp,
  type UpstreamProcess,
} from './spawn.js';
