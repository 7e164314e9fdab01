export { type GithubMcpOptions, type RunningGithubMcp, startGithubMcp } from './github-mcp.js';
export { spawnGithubMcp, type UpstreamProcess } from './spawn.js';
