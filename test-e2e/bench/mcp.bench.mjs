// pnpm bench:mcp — gateway mode's cost: MCP `tools/call` through the gateway (token check,
// policy, the person's credential, audit intent and outcome, the upstream exchange) against
// the same upstream called directly with the person's GitHub token, in the same run, at a
// fixed number of calls in flight. Prints calls/s, p50 and p99, CPU per call (machine, the
// gateway alone) and the gateway's share. Runs the stack from dist/ (pnpm build first) on a
// private database and nats-server; the upstream is tools/mcp-upstreams in its own process.
//   BENCH_SECONDS (10), BENCH_CONCURRENCY (32), BENCH_ERA (modern | legacy)
// BENCH_PROFILE_DIR=<dir>: every service and the upstream run with --cpu-prof into <dir>, and
// flame graphs and self-time tables over each run's window are written there: the gateway's
// (flame-mcp-gateway.svg, top-mcp-gateway.txt), the upstream's in each run
// (flame-mcp-upstream-direct.svg, flame-mcp-upstream-via-gateway.svg) and the other services'
// top tables. This process (the load generator and the GitHub simulator) writes its own
// profile only when it exits: run it as `node --cpu-prof --cpu-prof-dir=<dir>`, and the
// command drawing it is printed.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { spawnGithubMcp } from '@context-gateway/mcp-upstreams';
import { RpcClient } from '@context-gateway/messaging';
import { startSimulator } from '@context-gateway/source-simulators';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

import { renderFlameGraph, selfTimeTable } from '../../scripts/flamegraph.mjs';
import { startBenchStack } from '../../services/personal-server/bench/bench-stack.mjs';
import { mcpAgentOrg } from '../support/mcp-agent-org.mjs';

const rootDir = fileURLToPath(new URL('../..', import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const ERA = process.env.BENCH_ERA === 'legacy' ? 'legacy' : 'modern';
const OPERATOR_TOKEN = `bench-${randomUUID()}${randomUUID()}`;
const CLIENT_ID = 'cg-bench-mcp-github';
const CLIENT_SECRET = 'cg-bench-mcp-github-secret-0123456789';
const CALLBACK = 'http://127.0.0.1:9/bench-callback';
const SCOPES = ['github:read:profile', 'github:tools'];
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR ? resolve(process.env.BENCH_PROFILE_DIR) : undefined;
const PROFILE_ARGS = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [];
if (PROFILE_DIR) mkdirSync(PROFILE_DIR, { recursive: true });
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

if (
  !existsSync(join(rootDir, 'services/gateway/dist/main.js')) ||
  !existsSync(join(rootDir, 'tools/mcp-upstreams/dist/cli.js'))
) {
  console.error('not built: run `pnpm build` first');
  process.exit(1);
}

// --- CPU accounting (Linux /proc; USER_HZ = 100) ----------------------------------------
const TICK_MS = 10;
function processCpuMs(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      /* exited */
    }
  }
  return ticks * TICK_MS;
}
function machineBusyMs() {
  const [, ...values] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = values.map(Number);
  return (user + nice + system + irq + softirq + steal) * TICK_MS;
}

/** One SDK client per call in flight (each keeps its HTTP connection), as many agents would. */
async function agents(url, token) {
  return Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, i) => {
      const client = new Client(
        { name: `bench-agent-${i}`, version: '1.0.0' },
        ERA === 'modern' ? { versionNegotiation: { mode: 'auto' } } : {},
      );
      await client.connect(
        new StreamableHTTPClientTransport(new URL(url), { authProvider: { token: () => Promise.resolve(token) } }),
      );
      return client;
    }),
  );
}

/** Each run's window on the monotonic clock (the profiles' clock), for the flame graphs. */
const windows = [];

/** Closed loop: each client calls again as soon as its call returns, for SECONDS. */
async function drive(label, clients, name, pids) {
  const latencies = [];
  let failed = 0;
  /** Why calls failed (first words of each distinct error), printed after the table. */
  const reasons = new Map();
  const fail = (why) => {
    failed++;
    const key = String(why).slice(0, 120);
    reasons.set(key, (reasons.get(key) ?? 0) + 1);
  };
  const cpu0 = processCpuMs(pids.all);
  const gw0 = processCpuMs(pids.gateway);
  const each0 = Object.fromEntries(Object.entries(pids.named).map(([name, pid]) => [name, processCpuMs([pid])]));
  const fromUs = monotonicUs();
  const busy0 = machineBusyMs();
  const self0 = process.cpuUsage();
  const load = loadavg()[0];
  const end = performance.now() + SECONDS * 1000;
  await Promise.all(
    clients.map(async (client, i) => {
      let n = 0;
      while (performance.now() < end) {
        const started = performance.now();
        try {
          const result = await client.callTool({
            name,
            arguments: { repo: `bench/repo-${i}`, title: `call ${n++}` },
          });
          if (result.isError) fail(JSON.stringify(result.content));
          else latencies.push(performance.now() - started);
        } catch (error) {
          fail(`${error.code ?? ''} ${error.message}`);
        }
      }
    }),
  );
  const toUs = monotonicUs();
  const ok = latencies.length;
  const byProcess = Object.fromEntries(
    Object.entries(pids.named).map(([name, pid]) => [name, +((processCpuMs([pid]) - each0[name]) / ok).toFixed(3)]),
  );
  console.log(`${label}: CPU ms/call by process`, byProcess);
  windows.push({ label, fromUs, toUs, rate: Math.round(ok / SECONDS) });
  latencies.sort((a, b) => a - b);
  const pct = (p) => +(latencies[Math.min(ok - 1, Math.floor((p / 100) * ok))] ?? NaN).toFixed(2);
  const self = process.cpuUsage(self0);
  if (reasons.size > 0) console.log(`${label}: failures`, Object.fromEntries(reasons));
  return {
    label,
    'calls/s': Math.round(ok / SECONDS),
    'p50 ms': pct(50),
    'p99 ms': pct(99),
    'machine CPU ms/call': ok ? +((machineBusyMs() - busy0) / ok).toFixed(3) : NaN,
    'stack + upstream CPU ms/call': ok ? +((processCpuMs(pids.all) - cpu0) / ok).toFixed(3) : NaN,
    'gateway CPU ms/call': ok ? +((processCpuMs(pids.gateway) - gw0) / ok).toFixed(3) : NaN,
    'load generator CPU ms/call': ok ? +((self.user + self.system) / 1000 / ok).toFixed(3) : NaN,
    failed,
    'load avg (1 min) at start': +load.toFixed(1),
  };
}

// --- the stack, an org, a person ---------------------------------------------------------
// The upstream checks every call's token at the simulator: no rate limit may end a run early.
const sim = await startSimulator({ provider: 'github', rateLimit: 100_000_000, maxConcurrentRequests: 10_000 });
const upstream = await spawnGithubMcp(sim.url, { nodeArgs: PROFILE_ARGS });
console.log(`starting the stack (era ${ERA}, ${CONCURRENCY} calls in flight, ${SECONDS} s per run) …`);
const bench = await startBenchStack('mcp', {
  // BENCH_SERVICE_ENV='{"NODE_OPTIONS":"--import /path/profiler.mjs"}' adds to every service's environment.
  ...JSON.parse(process.env.BENCH_SERVICE_ENV ?? '{}'),
  OPERATOR_TOKEN,
  INTEGRATION_ALLOW_INSECURE_HTTP: 'true',
  INTEGRATION_GITHUB_BASE_URL: sim.url,
  INTEGRATION_GITHUB_CLIENT_ID: CLIENT_ID,
  INTEGRATION_GITHUB_CLIENT_SECRET: CLIENT_SECRET,
  SYNC_INTERVAL_MS: '3600000',
  MCP_ALLOW_INSECURE_UPSTREAMS: 'true',
  MCP_ALLOW_PRIVATE_UPSTREAMS: 'true',
  RATE_LIMIT_PER_KEY: '100000000',
  RATE_LIMIT_PER_IP: '100000000',
  ...(PROFILE_DIR ? { STACK_NODE_ARGS: PROFILE_ARGS.join(' '), STACK_BUNDLE: '0' } : {}),
}).catch(async (error) => {
  await upstream.stop();
  await sim.stop();
  throw error;
});
const { stack, nc } = bench;
/** The processes whose profiles are drawn (set once the stack runs). */
let profiled;
try {
  const gateway = `http://localhost:${new URL(stack.urls.gateway).port}`;
  const {
    applicationId,
    userId,
    accessToken: agentToken,
    admin,
  } = await mcpAgentOrg({
    gatewayUrl: gateway,
    operatorToken: OPERATOR_TOKEN,
    broker: new RpcClient(nc),
    sim,
    githubClient: { id: CLIENT_ID, secret: CLIENT_SECRET },
    redirectUris: [`${gateway}/v1/connect/callback`, `${stack.urls.gateway}/v1/connect/callback`],
    login: 'bench-agent',
    repos: 5,
    orgName: 'MCP Bench',
    appName: 'Bench Agent',
    callback: CALLBACK,
    scopes: SCOPES,
    mcpServer: { url: upstream.url, resourceArguments: { create_issue: 'repo' } },
  });
  // The person's own GitHub token, for the direct run (what the gateway injects upstream).
  const { secret: apiKey } = await admin('POST', `/v1/admin/applications/${applicationId}/api-keys`);
  let githubToken;
  for (let i = 0; !githubToken; i++) {
    const res = await fetch(`${gateway}/v1/credentials`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ integration: 'github', userId }),
    });
    if (res.ok) githubToken = (await res.json()).accessToken;
    else if (i > 200) throw new Error(`credentials: ${res.status} ${await res.text()}`);
    else await new Promise((r) => setTimeout(r, 50));
  }

  const pids = {
    all: [...Object.values(stack.processes).map((p) => p.child.pid), upstream.pid],
    gateway: [stack.processes.gateway.child.pid],
    named: {
      ...Object.fromEntries(Object.entries(stack.processes).map(([name, p]) => [name, p.child.pid])),
      upstream: upstream.pid,
    },
  };
  profiled = pids.named;
  const viaGateway = await agents(`${gateway}/mcp`, agentToken);
  const direct = await agents(upstream.url, githubToken);
  // Warm-up: the tool list read into policy, JIT, connections.
  await viaGateway[0].listTools();
  for (const [clients, name] of [
    [viaGateway, 'github.create_issue'],
    [direct, 'create_issue'],
  ])
    await Promise.all(clients.map((c) => c.callTool({ name, arguments: { repo: 'bench/warm', title: 'warm' } })));

  const straight = await drive('upstream directly', direct, 'create_issue', pids);
  const through = await drive('through the gateway', viaGateway, 'github.create_issue', pids);
  console.table([straight, through]);
  const share = (through['machine CPU ms/call'] - straight['machine CPU ms/call']) / through['machine CPU ms/call'];
  console.log(
    `gateway: ${through['calls/s']} calls/s = ${((100 * through['calls/s']) / straight['calls/s']).toFixed(0)}% of direct; ` +
      `adds ${(through['p50 ms'] - straight['p50 ms']).toFixed(2)} ms at p50; ` +
      `its share of the machine CPU per call ${(100 * share).toFixed(0)}% (gateway process alone ${through['gateway CPU ms/call']} ms/call)`,
  );
  for (const c of [...viaGateway, ...direct]) await c.close();
} finally {
  await bench.stop();
  await upstream.stop();
  await sim.stop();
}

// The services and the upstream wrote their profiles as they exited.
if (PROFILE_DIR && profiled) {
  const files = readdirSync(PROFILE_DIR).filter((f) => f.endsWith('.cpuprofile'));
  const profileOf = (pid) => {
    const file = files.find((f) => f.split('.')[3] === String(pid));
    return file && JSON.parse(readFileSync(join(PROFILE_DIR, file), 'utf8'));
  };
  const [direct, via] = windows;
  const draw = (name, pid, window, what) => {
    const profile = profileOf(pid);
    if (!profile) return console.log(`no CPU profile of ${name} (pid ${pid}) in ${PROFILE_DIR}`);
    const title = `${name}, ${SECONDS} s of MCP tools/call ${what} at ${window.rate} calls/s (${ERA})`;
    writeFileSync(join(PROFILE_DIR, `flame-mcp-${name}.svg`), renderFlameGraph(profile, { ...window, title }));
    writeFileSync(join(PROFILE_DIR, `top-mcp-${name}.txt`), `${selfTimeTable(profile, { ...window, top: 40 })}\n`);
    console.log(`flame graph: ${join(PROFILE_DIR, `flame-mcp-${name}.svg`)}, self time: top-mcp-${name}.txt`);
  };
  if (via) {
    draw('gateway', profiled.gateway, via, 'through the gateway');
    draw('upstream-via-gateway', profiled.upstream, via, 'through the gateway');
    for (const name of ['identity', 'policy', 'audit', 'connection-broker'])
      if (profiled[name]) draw(name, profiled[name], via, 'through the gateway');
  }
  if (direct) draw('upstream-direct', profiled.upstream, direct, 'straight to the upstream');
  for (const w of windows)
    console.log(
      `this process (load generator + GitHub simulator), ${w.label}: node scripts/flamegraph.mjs ${PROFILE_DIR}/CPU.*.${process.pid}.*.cpuprofile --from-us ${w.fromUs} --to-us ${w.toUs} > out.svg`,
    );
}
