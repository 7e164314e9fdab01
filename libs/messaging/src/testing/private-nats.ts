import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/**
 * A nats-server with JetStream that belongs to one test file. Stream names are fixed by the
 * catalog (AUDIT, CONTROL, ...), so a test that needs a stream's whole content, or kills NATS
 * on purpose, must not share the machine's server with other test files.
 */
export interface PrivateNats {
  url: string;
  port: number;
  /** Kills the server abruptly (what a crash looks like to clients); its data folder stays. */
  kill(): Promise<void>;
  /** Stops it (SIGTERM, as an orchestrator does) and starts it again on the same port and data folder. */
  restart(): Promise<void>;
  /** Kills it and removes its data folder. */
  stop(): Promise<void>;
}

function natsServerBinary(): string {
  // Debian installs it in /usr/sbin, which is not on every user's PATH.
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin']) {
    if (dir && existsSync(join(dir, 'nats-server'))) return join(dir, 'nats-server');
  }
  throw new Error('nats-server is not installed (apt-get install -y nats-server)');
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A free port below Linux's ephemeral range (32768–60999), for a test server that must know
 * its port before it starts: one the OS picked with listen(0) is also handed to outgoing
 * connections, which can take it before the server binds it.
 */
export async function freeTestPort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await bindable(port)) return port;
  }
  throw new Error('no free port found below the ephemeral range');
}

/**
 * Whether the server on `port` is the one named `name`: the INFO line a nats-server sends
 * first (in plain text, TLS or not) carries its name. Between freeTestPort and our server's
 * bind another process can take the port (another file's server, or an outgoing connection);
 * a bare "it accepts" would then hand this file someone else's server.
 */
function answersAs(port: number, name: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
      const end = received.indexOf('\r\n');
      if (end !== -1) done(serverNameIn(received.slice(0, end)) === name);
    });
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
  });
}

function serverNameIn(line: string): string | undefined {
  if (!line.startsWith('INFO ')) return undefined;
  try {
    return (JSON.parse(line.slice('INFO '.length)) as { server_name?: string }).server_name;
  } catch {
    return undefined;
  }
}

/**
 * Starts the server on a free port and resolves once it accepts connections; `configFile`
 * (e.g. writeNatsCredentials' auth.conf) adds its users and rights.
 */
export async function startPrivateNats(options: { configFile?: string } = {}): Promise<PrivateNats> {
  const dir = mkdtempSync(join(tmpdir(), 'cg-nats-'));
  const port = await freeTestPort();
  const name = `cg-test-${randomBytes(6).toString('hex')}`;
  const config = options.configFile ? ['-c', options.configFile] : [];
  const args = [...config, '-n', name, '-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir];
  let server = await spawnServer(args, port, name);
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    kill: () => server.end('SIGKILL'),
    async restart() {
      await server.end('SIGTERM');
      server = await spawnServer(args, port, name);
    },
    async stop() {
      await server.end('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One nats-server process (named `name` in `args`), resolved once it answers on `port`. */
async function spawnServer(
  args: string[],
  port: number,
  name: string,
): Promise<{ end(signal: NodeJS.Signals): Promise<void> }> {
  const child: ChildProcess = spawn(natsServerBinary(), args, {
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 15_000;
  while (!(await answersAs(port, name))) {
    if (child.exitCode !== null) throw new Error(`nats-server exited during start-up (code ${child.exitCode})`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`nats-server did not accept connections on port ${port} in time`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    async end(signal) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        await exited;
      }
    },
  };
}
