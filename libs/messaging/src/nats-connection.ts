import { type Clock, systemClock } from '@context-gateway/clock';
import { connect, errors, type NatsConnection, nkeyAuthenticator } from '@nats-io/transport-node';
import type { Logger } from 'pino';

export interface NatsConnectOptions {
  url: string;
  /** Shown in the server's connection list: the service name and instance. */
  name: string;
  logger: Logger;
  /** How long to keep trying at boot before giving up (the orchestrator restarts us). */
  bootTimeoutMs?: number;
  /**
   * How long one dial may take (TCP, TLS, the CONNECT handshake) before it counts as failed
   * and is retried. 2 s by default; tests on a loaded machine give a dial longer, so a slow
   * handshake is not mistaken for a server that does not answer.
   */
  dialTimeoutMs?: number;
  /** Decides when bootTimeoutMs has run out. */
  clock?: Clock;
  /**
   * This identity's nkey seed (readUserSeed), presented when the server asks for it (a
   * server without authorization does not, and the connection works as before).
   */
  seed?: Uint8Array;
  /** CA bundle that signed the server's certificate (tls:// with a private CA). */
  tlsCaFile?: string;
  /** Where replies to this connection arrive (inboxPrefix(service)); its rights allow only its own. */
  inboxPrefix?: string;
}

/** Production's limit on one dial (NatsConnectOptions.dialTimeoutMs). */
const DEFAULT_DIAL_TIMEOUT_MS = 2_000;

/** The server refused the credentials, or wanted some and got none: retrying cannot help. */
export class NatsAuthError extends Error {
  override readonly name = 'NatsAuthError';
}

/**
 * Connects once at boot (retrying until bootTimeoutMs), then reconnects forever: a NATS
 * restart must turn the service not-ready and back, never kill it.
 */
export async function connectNats(opts: NatsConnectOptions): Promise<NatsConnection> {
  const dialTimeoutMs = opts.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
  // The client reads 0 or NaN as no limit of its own and Infinity as 1 ms (Node's timer
  // overflow): a boot would hang on a silent server or never dial long enough to connect.
  if (!Number.isFinite(dialTimeoutMs) || dialTimeoutMs <= 0) {
    throw new RangeError(`dialTimeoutMs must be a positive number of milliseconds, got ${dialTimeoutMs}`);
  }
  const clock = opts.clock ?? systemClock;
  const deadline = clock.now() + (opts.bootTimeoutMs ?? 30_000);
  let attempt = 0;
  for (;;) {
    attempt += 1;
    try {
      const nc = await connect({
        servers: opts.url.split(','),
        name: opts.name,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
        reconnectJitter: 250,
        pingInterval: 10_000,
        timeout: dialTimeoutMs,
        // Otherwise every request allocates two Errors up front (capturing stacks) just in
        // case it times out: ~8 % of the gateway's CPU on the records query path
        // (docs/personal-server.md). RpcClient turns failures into AppError codes naming
        // the subject, and spans say where a request started.
        noAsyncTraces: true,
        ...(opts.seed ? { authenticator: nkeyAuthenticator(opts.seed) } : {}),
        ...(opts.inboxPrefix ? { inboxPrefix: opts.inboxPrefix } : {}),
        ...(opts.tlsCaFile ? { tls: { caFile: opts.tlsCaFile } } : {}),
      });
      opts.logger.info({ server: nc.getServer(), attempt }, 'nats connected');
      return nc;
    } catch (error) {
      if (error instanceof errors.AuthorizationError) {
        throw new NatsAuthError(
          opts.seed
            ? `NATS at ${opts.url} refused this service's credentials (authorization violation): ` +
                'the nkey in NATS_NKEY_SEED_FILE is not a user of that server; regenerate its configuration ' +
                'with `pnpm nats:credentials` or point NATS_NKEY_SEED_FILE at the right seed'
            : `NATS at ${opts.url} requires credentials (authorization violation) and none are configured: ` +
                "set NATS_NKEY_SEED_FILE to this service's nkey seed file",
          { cause: error },
        );
      }
      if (clock.now() >= deadline) {
        throw new Error(`NATS at ${opts.url} is not reachable after ${attempt} attempts: ${(error as Error).message}`, {
          cause: error,
        });
      }
      opts.logger.warn({ attempt, err: (error as Error).message }, 'nats not reachable yet, retrying');
      await new Promise((r) => setTimeout(r, Math.min(2_000, 200 * attempt)));
    }
  }
}

/**
 * Follows the connection's status events so readiness answers from memory, then confirms
 * with a round trip (PING/PONG through flush) bounded by a timeout.
 */
export class NatsHealth {
  private connected = true;

  constructor(
    private readonly nc: NatsConnection,
    private readonly logger: Logger,
  ) {
    void this.watch();
  }

  private async watch(): Promise<void> {
    for await (const status of this.nc.status()) {
      switch (status.type) {
        case 'disconnect':
          this.connected = false;
          this.logger.warn('nats disconnected');
          break;
        case 'reconnect':
          this.connected = true;
          this.logger.info('nats reconnected');
          break;
        default:
          break;
      }
    }
  }

  async check(timeoutMs = 1_000): Promise<{ up: boolean; detail: string }> {
    if (this.nc.isClosed()) return { up: false, detail: 'connection closed' };
    if (!this.connected) return { up: false, detail: 'disconnected, reconnecting' };
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.nc.flush(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('no PONG in time')), timeoutMs);
        }),
      ]);
      return { up: true, detail: '' };
    } catch (error) {
      return { up: false, detail: (error as Error).message };
    } finally {
      clearTimeout(timer);
    }
  }
}
