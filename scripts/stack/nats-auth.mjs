// @ts-check
// NATS credentials and the JetStream bootstrap for the local stack (`pnpm start`, the e2e
// tests, the fault suite): the built libs/messaging does the work (run `pnpm build` first).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The built libs/messaging (credentials, permissions, provisioning). */
export async function importMessagingLib() {
  const file = join(ROOT_DIR, 'libs', 'messaging', 'dist', 'index.js');
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`pnpm build\` first.`);
  return import(file);
}

/** The e2e tests' own client (stack.natsOptions()): it inspects streams and plays peers, so it may do anything. */
const NATS_TEST_PROBE = 'e2e-probe';

/**
 * Makes sure `dir` holds a seed per service and the bootstrap (keeping existing ones) and
 * the nats-server `auth.conf` generated from the catalog; returns the seed file of each
 * identity and the configuration file. `testProbe` adds NATS_TEST_PROBE (tests only).
 * @param {string} dir
 * @param {{ testProbe?: boolean }} [options]
 * @returns {Promise<{ configFile: string, seedFiles: Record<string, string> }>}
 */
export async function prepareNatsCredentials(dir, options = {}) {
  const messaging = await importMessagingLib();
  const everything = { publish: { allow: ['>'], deny: [] }, subscribe: { allow: ['>'] }, allow_responses: true };
  messaging.writeNatsCredentials(dir, options.testProbe ? { [NATS_TEST_PROBE]: everything } : {});
  /** @type {string[]} */
  const identities = [...messaging.NATS_IDENTITIES, ...(options.testProbe ? [NATS_TEST_PROBE] : [])];
  return {
    configFile: join(dir, messaging.NATS_AUTH_CONFIG_FILE),
    seedFiles: Object.fromEntries(identities.map((identity) => [identity, messaging.seedFileOf(dir, identity)])),
  };
}

/**
 * Runs `scripts/nats.mjs bootstrap` (streams and durable consumers) with `env`, which names
 * NATS_URL and, on a server that requires it, the bootstrap's NATS_NKEY_SEED_FILE.
 * @param {string} rootDir
 * @param {NodeJS.ProcessEnv} env
 * @param {(line: string) => void} log
 */
export async function runNatsBootstrap(rootDir, env, log) {
  log('Creating JetStream streams and consumers (scripts/nats.mjs bootstrap)');
  const code = await new Promise((resolveRun) => {
    const child = spawn(process.execPath, [join(rootDir, 'scripts', 'nats.mjs'), 'bootstrap'], {
      cwd: rootDir,
      env,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.once('error', () => resolveRun(-1));
    child.once('exit', (exitCode) => resolveRun(exitCode ?? -1));
  });
  if (code !== 0) throw new Error(`the NATS bootstrap failed (scripts/nats.mjs bootstrap exited with ${code})`);
}
