#!/usr/bin/env node
// Starts a test upstream MCP server as its own process and prints one JSON line
// {"url": "..."} once it listens (tests read it; see spawn.ts). Stops on SIGTERM/SIGINT.
import { parseArgs } from 'node:util';

import { startGithubMcp } from './github-mcp.js';

const { values } = parseArgs({
  options: {
    'github-api': { type: 'string' },
    port: { type: 'string' },
    'faulty-tools': { type: 'boolean' },
    'legacy-only': { type: 'boolean' },
    'tools-ttl-ms': { type: 'string' },
  },
});
if (!values['github-api']) {
  console.error(
    'usage: mcp-upstreams --github-api <url of the GitHub (simulator) API> [--port N] [--faulty-tools] [--legacy-only] [--tools-ttl-ms N]',
  );
  process.exit(2);
}
const running = await startGithubMcp({
  githubApiUrl: values['github-api'],
  port: Number(values.port ?? 0),
  faultyTools: values['faulty-tools'] ?? false,
  legacyOnly: values['legacy-only'] ?? false,
  ...(values['tools-ttl-ms'] !== undefined ? { toolsTtlMs: Number(values['tools-ttl-ms']) } : {}),
});
console.log(JSON.stringify({ url: running.url }));
for (const signal of ['SIGTERM', 'SIGINT'] as const)
  process.once(signal, () => void running.stop().then(() => process.exit(0)));
