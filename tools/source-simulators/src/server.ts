import { type Clock, systemClock } from '@context-gateway/clock';
import Fastify from 'fastify';

import { registerControl } from './control/control.routes.js';
import { SimulatorControl } from './control/simulator-control.js';
import { newCounters } from './counters.js';
import { acceptFormBodies } from './http.js';
import { registerAuthorization } from './oauth/authorization.routes.js';
import { OAuthStore } from './oauth/oauth-store.js';
import { demoProvider } from './providers/demo.provider.js';
import { githubProvider } from './providers/github.provider.js';
import { listenbrainzProvider } from './providers/listenbrainz.provider.js';
import { spotifyProvider } from './providers/spotify.provider.js';
import { createAccount } from './seeding.js';
import { Accounts, type AccountSpec, type Provider, type ProviderName, type SimContext } from './simulator-context.js';
import { Throttle } from './throttle.js';
import { Webhooks } from './webhooks.js';

export interface SimulatorClientSpec {
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
  name?: string;
}

export interface SimulatorOptions {
  provider: ProviderName;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** Base URL clients use, if not http://<host>:<port> (it is also the issuer). */
  publicUrl?: string;
  accessTokenTtlSeconds?: number;
  /** 0 = refresh tokens never expire. */
  refreshTokenTtlSeconds?: number;
  codeTtlSeconds?: number;
  /** GitHub: requests per account per hour before the primary rate limit answers (default 5000); ListenBrainz: per 10 s window (default 30). */
  rateLimit?: number;
  /** GitHub: concurrent requests per account beyond which the secondary rate limit answers (default 100, 0 = none). */
  maxConcurrentRequests?: number;
  /** Delay added to every resource API answer, in ms (default 0). */
  latencyMs?: number;
  /** OAuth clients registered at start (more through POST /_sim/clients). */
  clients?: SimulatorClientSpec[];
  /** Accounts created at start instead of the provider's default test accounts. */
  accounts?: AccountSpec[];
  /** When set, /_sim/ requires `Authorization: Bearer <controlToken>`. */
  controlToken?: string;
  /** Log requests with Fastify's logger (off by default: tests read their own output). */
  logger?: boolean;
  /** Where token expiry, rate-limit windows and storms take "now" from; tests pass a TestClock. */
  clock?: Clock;
}

export interface RunningSimulator {
  provider: ProviderName;
  url: string;
  control: SimulatorControl;
  stop(): Promise<void>;
}

const providers: Partial<Record<ProviderName, () => Provider>> = {
  github: githubProvider,
  spotify: spotifyProvider,
  demo: demoProvider,
  listenbrainz: listenbrainzProvider,
};

/** The providers this build can simulate. */
export function availableProviders(): ProviderName[] {
  return Object.keys(providers) as ProviderName[];
}

/** Starts one simulated source (authorization server + resource API + control API). */
export async function startSimulator(options: SimulatorOptions): Promise<RunningSimulator> {
  const make = providers[options.provider];
  if (!make) throw new Error(`no simulator for provider ${options.provider}`);
  const provider = make();
  const counters = newCounters();
  const clock = options.clock ?? systemClock;
  const store = new OAuthStore(
    {
      accessTokenTtlSeconds: options.accessTokenTtlSeconds ?? provider.tokenDefaults.accessTokenTtlSeconds,
      refreshTokenTtlSeconds: options.refreshTokenTtlSeconds ?? provider.tokenDefaults.refreshTokenTtlSeconds,
      codeTtlSeconds: options.codeTtlSeconds ?? provider.tokenDefaults.codeTtlSeconds,
    },
    provider.tokenFormat,
    counters,
    clock,
  );
  const ctx: SimContext = {
    provider,
    url: '',
    store,
    counters,
    accounts: new Accounts(),
    throttle: new Throttle(clock),
    webhooks: new Webhooks(counters, `GitHub-Hookshot/simulator`),
    rateLimit: {
      limit: options.rateLimit ?? provider.rateLimitDefaults?.limit ?? 5000,
      windowSeconds: provider.rateLimitDefaults?.windowSeconds ?? 3600,
      maxConcurrent: options.maxConcurrentRequests ?? 100,
    },
    latency: { ms: options.latencyMs ?? 0 },
    clock,
  };

  // Stopping a simulator ends it: open connections are closed, not waited for (a client that
  // left a response unread would otherwise keep close() waiting, as a busy CI run showed).
  const app = Fastify({ logger: options.logger ?? false, bodyLimit: 5 * 1024 * 1024, forceCloseConnections: true });
  acceptFormBodies(app);
  registerAuthorization(app, ctx);
  provider.routes(app, ctx);
  registerControl(app, ctx, options.controlToken);

  for (const c of options.clients ?? []) {
    store.registerClient({
      clientId: c.clientId,
      clientSecret: c.clientSecret,
      redirectUris: c.redirectUris,
      name: c.name ?? c.clientId,
    });
  }
  for (const spec of options.accounts ?? provider.defaultAccounts) createAccount(ctx, spec);

  const host = options.host ?? '127.0.0.1';
  await app.listen({ port: options.port ?? 0, host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const listenHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  ctx.url = (
    options.publicUrl ?? `http://${listenHost.includes(':') ? `[${listenHost}]` : listenHost}:${port}`
  ).replace(/\/$/, '');

  return {
    provider: options.provider,
    url: ctx.url,
    control: new SimulatorControl(ctx.url, options.controlToken),
    async stop() {
      await ctx.webhooks.settled();
      await app.close();
    },
  };
}
