#!/usr/bin/env node
// @ts-check
// `pnpm demo`: the connect flow end to end on this machine, one command.
//   1. builds (skip with --no-build);
//   2. Postgres and NATS as `pnpm start` finds or starts them;
//   3. the simulated sources (tools/source-simulators: Demo Notes, GitHub, Spotify, and an
//      API-key source), each with the gateway's OAuth client registered;
//   4. the seven services, configured to talk to the simulators;
//   5. the example app backend (examples/demo-app), which registers itself on first run.
// Then open http://localhost:3000 and click "Connect Demo Notes". Ctrl-C stops everything.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { ensureNats, ensurePostgres } from './stack/infra.mjs';
import { DEFAULT_DATABASE_URL, DEFAULT_NATS_URL, DEFAULT_PORTS } from './stack/service-catalog.mjs';
import { startStack } from './stack/stack.mjs';

const rootDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const GATEWAY = `http://localhost:${DEFAULT_PORTS.gateway}`;
const APP_PORT = Number(process.env.DEMO_APP_PORT ?? 3000);
const CLIENT_ID = 'context-gateway-dev';
/** Simulated sources and where they listen (the ports `pnpm simulators` uses too). */
const SOURCES = /** @type {const} */ ([
  { provider: 'demo', integration: 'DEMO', port: 9300 },
  { provider: 'github', integration: 'GITHUB', port: 9310 },
  { provider: 'spotify', integration: 'SPOTIFY', port: 9320 },
]);

/** A dev-only secret kept in .data/ so restarts keep working with the same registrations. */
function devSecret(name) {
  const file = join(rootDir, '.data', 'demo', name);
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dirname(file), { recursive: true });
  const value = randomBytes(24).toString('base64url');
  writeFileSync(file, value, { mode: 0o600 });
  return value;
}

/**
 * The accounts a simulator really has (its defaults), as its control API lists them.
 * @param {{ control: { state(): Promise<Record<string, unknown>> } }} sim
 * @returns {Promise<{ login: string, seed: string }[]>}
 */
async function testAccounts(sim) {
  const state = await sim.control.state();
  return /** @type {{ login: string, seed: string }[]} */ (state.accounts ?? []);
}

function run(command, args) {
  return new Promise((resolveRun, rejectRun) => {
    const child = spawn(command, args, { cwd: rootDir, stdio: 'inherit' });
    child.once('error', rejectRun);
    child.once('exit', (code) =>
      code === 0 ? resolveRun(undefined) : rejectRun(new Error(`${command} ${args.join(' ')} failed (exit ${code})`)),
    );
  });
}

async function main() {
  const cleanups = [];
  const cleanUp = async () => {
    for (const cleanup of cleanups.splice(0).reverse())
      await cleanup().catch((e) => console.error(`while stopping: ${e.message}`));
  };
  let stopping = false;
  const onSignal = () => {
    if (stopping) process.exit(130);
    stopping = true;
    console.log('\nStopping…');
    cleanUp().then(() => process.exit(0));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    if (!process.argv.includes('--no-build')) {
      console.log('Building (pnpm build; skip with --no-build)…');
      await run('pnpm', ['build']);
    }
    const operatorToken = process.env.OPERATOR_TOKEN ?? devSecret('operator-token');
    const clientSecret = devSecret('oauth-client-secret');

    const { startSimulator } = await import(pathToFileURL(join(rootDir, 'tools/source-simulators/dist/index.js')).href);
    const env = { OPERATOR_TOKEN: operatorToken, INTEGRATION_ALLOW_INSECURE_HTTP: 'true', GATEWAY_PUBLIC_URL: GATEWAY };
    for (const source of SOURCES) {
      const sim = await startSimulator({
        provider: source.provider,
        port: source.port,
        clients: [
          {
            clientId: CLIENT_ID,
            clientSecret,
            redirectUris: [`${GATEWAY}/v1/connect/callback`],
            name: 'Context Gateway (demo)',
          },
        ],
      });
      cleanups.push(() => sim.stop());
      Object.assign(env, {
        [`INTEGRATION_${source.integration}_BASE_URL`]: sim.url,
        [`INTEGRATION_${source.integration}_CLIENT_ID`]: CLIENT_ID,
        [`INTEGRATION_${source.integration}_CLIENT_SECRET`]: clientSecret,
      });
      const logins = (await testAccounts(sim)).map((a) => a.login);
      console.log(
        `simulator ${source.provider.padEnd(8)} ${sim.url}  (test accounts: ${logins.join(', ')}; password: password)`,
      );
    }
    // The API-key source: the demo API again. Each account's key is derived from its seed.
    const keys = await startSimulator({ provider: 'demo', port: 9301 });
    cleanups.push(() => keys.stop());
    env.INTEGRATION_DEMO_KEYS_BASE_URL = keys.url;
    const { defaultApiKey } = await import(pathToFileURL(join(rootDir, 'tools/source-simulators/dist/index.js')).href);
    const apiKeys = (await testAccounts(keys)).map((a) => `${a.login}: ${defaultApiKey(a.seed)}`);
    console.log(`simulator demo-keys ${keys.url}  (API keys to paste on the consent page: ${apiKeys.join(', ')})`);
    // ListenBrainz: no OAuth either; each account's user token is derived from its seed.
    const listenbrainz = await startSimulator({ provider: 'listenbrainz', port: 9330 });
    cleanups.push(() => listenbrainz.stop());
    env.INTEGRATION_LISTENBRAINZ_BASE_URL = listenbrainz.url;
    const { defaultListenBrainzToken } = await import(
      pathToFileURL(join(rootDir, 'tools/source-simulators/dist/index.js')).href
    );
    const userTokens = (await testAccounts(listenbrainz)).map((a) => `${a.login}: ${defaultListenBrainzToken(a.seed)}`);
    console.log(`simulator listenbrainz ${listenbrainz.url}  (user tokens to paste: ${userTokens.join(', ')})`);

    const databaseUrl = process.env.DATABASE_URL || DEFAULT_DATABASE_URL;
    const natsUrl = process.env.NATS_URL || DEFAULT_NATS_URL;
    const postgres = await ensurePostgres(databaseUrl, join(rootDir, '.data', 'postgres'), {});
    cleanups.push(() => postgres.stop());
    const nats = await ensureNats(natsUrl, join(rootDir, '.data', 'nats'), {});
    cleanups.push(() => nats.stop());
    const stack = await startStack({
      rootDir,
      databaseUrl,
      natsUrl,
      env,
      log: (line) => console.log(line),
      readyTimeoutMs: 120_000,
    });
    cleanups.push(() => stack.stop());

    const { startDemoApp } = await import(pathToFileURL(join(rootDir, 'examples/demo-app/server.mjs')).href);
    const app = await startDemoApp({
      gatewayUrl: GATEWAY,
      operatorToken,
      port: APP_PORT,
      stateFile: join(rootDir, '.data', 'demo', 'demo-app.json'),
    });
    cleanups.push(() => app.close());

    const appStateFile = join(rootDir, '.data', 'demo', 'demo-app.json');
    const operatorTokenFrom = process.env.OPERATOR_TOKEN
      ? 'the OPERATOR_TOKEN environment variable'
      : join(rootDir, '.data', 'demo', 'operator-token');
    console.log(`
────────────────────────────────────────────────────────────────────────
 Context Gateway demo is running.

   Open ${app.url} and click "Connect Demo Notes".

 You will see the gateway's consent page, create a passkey (your browser
 asks), sign in at the simulated source as alice / password, and land back
 in the demo app with a connectionId and the notes it can read.

 Read them yourself, as the app backend does:
   API_KEY=$(node -p 'require("${appStateFile}").apiKey')
   curl -H "Authorization: Bearer $API_KEY" \\
     "${GATEWAY}/v1/connections/<connectionId>/records?type=document.note"

 Gateway: ${GATEWAY}   OpenAPI: ${GATEWAY}/v1/openapi.json
 Operator token (pnpm cg, admin API): ${operatorTokenFrom}
 Press Ctrl-C to stop.
────────────────────────────────────────────────────────────────────────`);
    const exit = await stack.unexpectedExit;
    console.error(`${exit.service} stopped unexpectedly; stopping the demo.`);
    await cleanUp();
    return 1;
  } catch (error) {
    console.error(`\n${/** @type {Error} */ (error).message}`);
    await cleanUp();
    return 1;
  }
}

process.exitCode = await main();
