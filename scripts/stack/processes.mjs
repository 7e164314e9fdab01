// @ts-check
// Child processes the start script owns: spawned in their own process group so a Ctrl-C
// in the terminal reaches only the start script, which then stops them in order
// (services first, Postgres and NATS last, so services can finish their shutdown work).
import { spawn } from 'node:child_process';

import { createPrefixedLogger, createRing } from './log-lines.mjs';

/** Every child still running; signalled if the start script itself exits abruptly. */
const live = new Set();
let exitHookInstalled = false;

function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Detached children would outlive us otherwise. SIGTERM (not SIGKILL): each child can
  // still shut down cleanly on its own, e.g. the Postgres runner stops Postgres.
  process.on('exit', () => {
    for (const child of live) {
      try {
        child.kill('SIGTERM');
      } catch {
        // already gone
      }
    }
  });
}

/**
 * @typedef {{ code: number | null, signal: NodeJS.Signals | null }} ExitInfo
 * @typedef {{
 *   name: string,
 *   child: import('node:child_process').ChildProcess,
 *   exited: Promise<ExitInfo>,
 *   isRunning(): boolean,
 *   stopRequested(): boolean,
 *   lastLines(): string[],
 *   stop(timeoutMs?: number): Promise<ExitInfo>,
 *   kill(signal?: NodeJS.Signals): Promise<ExitInfo>,
 * }} ManagedProcess
 */

/**
 * @param {string} name
 * @param {string} command
 * @param {string[]} args
 * @param {{
 *   cwd: string,
 *   env: NodeJS.ProcessEnv,
 *   write: (line: string) => void,
 *   width: number,
 *   colour?: number | undefined,
 *   ipc?: boolean,
 *   keepLines?: number,
 * }} options
 * @returns {ManagedProcess}
 */
export function spawnManaged(name, command, args, options) {
  installExitHook();
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    detached: true,
    stdio: options.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  /** @type {{ add(line: string): void, values(): string[] }} */
  const ring = createRing(options.keepLines ?? 20);
  const logger = createPrefixedLogger(name, {
    width: options.width,
    colour: options.colour,
    write: options.write,
    onLine: (line) => ring.add(line),
  });
  child.stdout?.on('data', (chunk) => logger.push(chunk));
  child.stderr?.on('data', (chunk) => logger.push(chunk));

  let running = true;
  // Set by stop(): an exit we asked for is not a crash, even while the rest keep running.
  let stopping = false;
  /** @type {Promise<ExitInfo>} */
  const exited = new Promise((resolve) => {
    // 'error' covers a binary that cannot be executed at all; 'exit' never follows it.
    child.once('error', (error) => {
      ring.add(`failed to start: ${error.message}`);
      options.write(`${name}: failed to start: ${error.message}`);
      running = false;
      live.delete(child);
      resolve({ code: -1, signal: null });
    });
    child.once('exit', (code, signal) => {
      running = false;
      live.delete(child);
      // 'exit' can come before the last output is read: a process that dies at start-up
      // would be reported with no log lines. Its pipes are read to their end first (briefly:
      // a pipe a grandchild still holds open does not hold the report back).
      const drained = [child.stdout, child.stderr].map((stream) =>
        stream && !stream.destroyed ? new Promise((done) => stream.once('close', done)) : undefined,
      );
      void Promise.race([Promise.all(drained), new Promise((done) => setTimeout(done, 1_000).unref())]).then(() => {
        logger.flush();
        resolve({ code, signal });
      });
    });
  });

  return {
    name,
    child,
    exited,
    isRunning: () => running,
    stopRequested: () => stopping,
    lastLines: () => ring.values(),
    async stop(timeoutMs = 10_000) {
      if (!running) return exited;
      stopping = true;
      child.kill('SIGTERM');
      /** @type {NodeJS.Timeout | undefined} */
      let timer;
      const timedOut = new Promise((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      });
      const first = await Promise.race([exited, timedOut]);
      clearTimeout(timer);
      if (first === 'timeout' && running) {
        options.write(`${name}: still running ${timeoutMs} ms after SIGTERM, sending SIGKILL`);
        child.kill('SIGKILL');
      }
      return exited;
    },
    // At once, with no grace (the fault suite's SIGKILL); counts as a requested stop, so the
    // stack can restart it.
    kill(signal = 'SIGKILL') {
      if (!running) return exited;
      stopping = true;
      child.kill(signal);
      return exited;
    },
  };
}
