#!/usr/bin/env node
// Starts a test upstream MCP server as its own process and prints one JSON line
// {"url": "..."} once it listens (tests read it; see spawn.ts). Stops on SIGTERM/SIGINT.
import { parseArgs } from 'node:util';

import { startConformanceMcp } from './conformance-mcp.js';
import { startGithubMcp } from './github-mcp.js';
import { startOAuthMcp } from './oauth-mcp.js';

const { values } = parseArgs({
  options: {
    'github-api': { type: 'string' },
    port: { type: 'string' },
    'faulty-tools': { type: 'boolean' },
    'legacy-only': { type: 'boolean' },
    // The notes server behind its own authorization server (oauth-mcp.ts) instead.
    'tools-ttl-ms': { type: 'string' },
    oauth: { type: 'boolean' },
    // The MCP conformance suite's scenarios (conformance-mcp.ts) instead.
    conformance: { type: 'boolean' },
    'access-token-ttl': { type: 'string' },
    'no-registration': { type: 'boolean' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'redirect-uri': { type: 'string' },
  },
});
if (values.oauth) {
  const clientId = values['client-id'];
  const running = await startOAuthMcp({
    accessTokenTtl: values['access-token-ttl'] ? Number(values['access-token-ttl']) : undefined,
    noRegistration: values['no-registration'] ?? false,
    preRegistered: clientId
      ? { clientId, clientSecret: values['client-secret'] ?? '', redirectUri: values['redirect-uri'] ?? '' }
      : undefined,
  });
  console.log(JSON.stringify({ url: running.url, issuer: running.issuer }));
  for (const signal of ['SIGTERM', 'SIGINT'] as const)
    process.once(signal, () => void running.stop().then(() => process.exit(0)));
} else if (values.conformance) {
  const running = await startConformanceMcp({ port: Number(values.port ?? 0) });
  console.log(JSON.stringify({ url: running.url }));
  for (const signal of ['SIGTERM', 'SIGINT'] as const)
    process.once(signal, () => void running.stop().then(() => process.exit(0)));
} else if (!values['github-api']) {
  console.error(
    'usage: mcp-upstreams --github-api <url of the GitHub (simulator) API> [--port N] [--faulty-tools] [--legacy-only] [--tools-ttl-ms N]\n' +
      '       mcp-upstreams --oauth [--access-token-ttl S] [--no-registration] [--client-id ID --client-secret S --redirect-uri URL]\n' +
      "       mcp-upstreams --conformance [--port N]   (the MCP conformance suite's scenarios)",
  );
  process.exit(2);
} else {
  await github(values['github-api']);
}

async function github(githubApiUrl: string) {
  const running = await startGithubMcp({
    githubApiUrl,
    port: Number(values.port ?? 0),
    faultyTools: values['faulty-tools'] ?? false,
    legacyOnly: values['legacy-only'] ?? false,
    ...(values['tools-ttl-ms'] !== undefined ? { toolsTtlMs: Number(values['tools-ttl-ms']) } : {}),
  });
  console.log(JSON.stringify({ url: running.url }));
  for (const signal of ['SIGTERM', 'SIGINT'] as const)
    process.once(signal, () => void running.stop().then(() => process.exit(0)));
}
