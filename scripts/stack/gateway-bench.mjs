// What the gateway's benches share: a stack of identity, policy and gateway on a fresh database
// of the local Postgres and a private nats-server, and the admin API calls that set up an org.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ensureNats } from './infra.mjs';
import { startStack } from './stack.mjs';

const ADMIN_URL = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * Starts identity, policy and gateway from `rootDir`'s dist with `env` (OPERATOR_TOKEN among it).
 * @param {{ rootDir: string, name: string, env: NodeJS.ProcessEnv, readyTimeoutMs?: number, natsTestProbe?: boolean }} options
 */
export async function startGatewayBench(options) {
  const scratch = mkdtempSync(join(tmpdir(), `cg-bench-${options.name}-`));
  const admin = new URL(ADMIN_URL);
  const databaseUrl = `${admin.protocol}//${admin.username}@${admin.host}/cg_bench_${randomUUID().slice(0, 8)}`;
  const natsPort = 20_000 + Math.floor(Math.random() * 20_000);
  const natsUrl = `nats://127.0.0.1:${natsPort}`;
  const quiet = () => {};
  const nats = await ensureNats(natsUrl, join(scratch, 'nats'), {
    log: quiet,
    ...(options.natsTestProbe ? { natsTestProbe: true } : {}),
  });
  const stop = async () => {
    await stack?.stop().catch(() => undefined);
    await nats.stop().catch(() => undefined);
    rmSync(scratch, { recursive: true, force: true });
  };
  /** @type {Awaited<ReturnType<typeof startStack>> | undefined} */
  let stack;
  try {
    stack = await startStack({
      rootDir: options.rootDir,
      databaseUrl,
      natsUrl,
      natsSeedFiles: nats.natsSeedFiles,
      ports: { identity: natsPort + 1, policy: natsPort + 2, gateway: natsPort + 3 },
      services: ['identity', 'policy', 'gateway'],
      log: quiet,
      readyTimeoutMs: options.readyTimeoutMs ?? 120_000,
      env: {
        LOG_LEVEL: 'warn',
        MASTER_KEY_FILE: join(scratch, 'keys', 'master.key'),
        BOOT_TIMEOUT_MS: '20000',
        ...options.env,
      },
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return { stack, nats, natsUrl, natsPort, scratch, stop };
}

/**
 * A caller of the gateway's admin API with the operator token; throws on any status ≥ 300.
 * @param {string} gatewayUrl
 * @param {string} operatorToken
 * @returns {(method: string, path: string, body?: unknown, token?: string) => Promise<any>}
 */
export function operatorApi(gatewayUrl, operatorToken) {
  return async (method, path, body, token = operatorToken) => {
    const res = await fetch(`${gatewayUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const json = await res.json();
    if (res.status >= 300) throw new Error(`${method} ${path} → ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
}

/**
 * An org with `integration` enabled and one application holding `scopes` of it.
 * @param {(method: string, path: string, body?: unknown) => Promise<any>} call
 * @param {string} integration
 * @param {string[]} scopes
 * @returns {Promise<{ org: { id: string }, app: { id: string } }>}
 */
export async function benchOrgWithApp(call, integration, scopes) {
  const org = await call('POST', '/v1/admin/organizations', { name: 'Bench org' });
  await call('PUT', `/v1/admin/organizations/${org.id}/policy/integrations`, { integrations: [integration] });
  const app = await call('POST', `/v1/admin/organizations/${org.id}/applications`, {
    name: 'bench',
    callbackUrls: ['https://bench.example/cb'],
    integrations: [integration],
    scopes,
  });
  return { org, app };
}
