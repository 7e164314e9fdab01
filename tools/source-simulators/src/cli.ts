#!/usr/bin/env node
import { parseArgs } from 'node:util';

import { defaultApiKey } from './providers/demo.provider.js';
import { defaultListenBrainzToken } from './providers/listenbrainz.data.js';
import { availableProviders, type RunningSimulator, startSimulator } from './server.js';
import type { ProviderName } from './simulator-context.js';

/**
 * `pnpm simulators`: every simulated source in one process, each on its own port, with one
 * OAuth client registered at each (the broker's dev configuration). Ctrl-C stops them.
 */
const HELP = `Usage: pnpm simulators [options]

  --only <list>              providers to start (default: all)
  --host <host>              interface to listen on (default 127.0.0.1)
  --github-port <n>          default 9310
  --spotify-port <n>         default 9320
  --demo-port <n>            default 9300
  --demo-keys-port <n>       the demo API again, for the broker's API-key integration (default 9301)
  --listenbrainz-port <n>    default 9330 (no OAuth: prints each account's user token)
  --client-id <id>           OAuth client registered at each source (default context-gateway-dev)
  --client-secret <secret>   its secret (default dev-secret-change-me)
  --redirect-uri <url>       its redirect URI, repeatable (default http://localhost:8080/v1/connect/callback)
  --access-token-ttl <s>     access-token lifetime in seconds (default: the source's own)
  --control-token <token>    require it as a bearer token on /_sim/ (default: none)
`;

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    'github-port': { type: 'string', default: '9310' },
    'spotify-port': { type: 'string', default: '9320' },
    'demo-port': { type: 'string', default: '9300' },
    'demo-keys-port': { type: 'string', default: '9301' },
    'listenbrainz-port': { type: 'string', default: '9330' },
    'client-id': { type: 'string', default: 'context-gateway-dev' },
    'client-secret': { type: 'string', default: 'dev-secret-change-me' },
    'redirect-uri': { type: 'string', multiple: true },
    'access-token-ttl': { type: 'string' },
    'control-token': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

const available = availableProviders();
const only = (values.only ?? available.join(',')).split(',').map((s) => s.trim()) as ProviderName[];
for (const p of only) {
  if (!available.includes(p)) {
    process.stderr.write(`unknown provider ${p}\n${HELP}`);
    process.exit(2);
  }
}

const running: RunningSimulator[] = [];
const client = {
  clientId: values['client-id'],
  clientSecret: values['client-secret'],
  redirectUris: values['redirect-uri'] ?? ['http://localhost:8080/v1/connect/callback'],
  name: 'Context Gateway (dev)',
};
try {
  for (const provider of only) {
    const sim = await startSimulator({
      provider,
      host: values.host,
      port: Number(values[`${provider}-port`]),
      clients: [client],
      ...(values['access-token-ttl'] ? { accessTokenTtlSeconds: Number(values['access-token-ttl']) } : {}),
      ...(values['control-token'] ? { controlToken: values['control-token'] } : {}),
    });
    running.push(sim);
    const state = (await sim.control.state()) as { accounts: Array<{ login: string; seed: string }> };
    const accounts =
      provider === 'listenbrainz'
        ? `user tokens: ${state.accounts.map((a) => `${a.login}=${defaultListenBrainzToken(a.seed)}`).join(', ')}`
        : `accounts: ${state.accounts.map((a) => `${a.login}/password`).join(', ')}`;
    process.stdout.write(`${provider.padEnd(9)} ${sim.url}  ${accounts}\n`);
  }
  if (only.includes('demo')) {
    // The broker's `demo-keys` integration: the same API, authenticated by a pasted API key.
    const sim = await startSimulator({ provider: 'demo', host: values.host, port: Number(values['demo-keys-port']) });
    running.push(sim);
    const state = (await sim.control.state()) as { accounts: Array<{ login: string; seed: string }> };
    process.stdout.write(
      `demo-keys ${sim.url}  API keys: ${state.accounts.map((a) => `${a.login}=${defaultApiKey(a.seed)}`).join(', ')}\n`,
    );
  }
  process.stdout.write(
    `OAuth client at each: client_id=${client.clientId} redirect_uri=${client.redirectUris.join(' ')}\n` +
      `Control API: <url>/_sim/ (docs/simulators.md). Ctrl-C to stop.\n`,
  );
} catch (err) {
  process.stderr.write(`could not start the simulators: ${(err as Error).message}\n`);
  await Promise.all(running.map((s) => s.stop()));
  process.exit(1);
}

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await Promise.all(running.map((s) => s.stop()));
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
