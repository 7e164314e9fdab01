// pnpm conformance:mcp — the MCP conformance suite (@modelcontextprotocol/conformance, every
// server scenario) straight against an upstream that implements its scenarios
// (tools/mcp-upstreams --conformance) and through gateway mode's /mcp in front of that same
// upstream, registered as an org's MCP server: prints both result tables side by side. The
// gateway run goes through an agent-side adapter that adds the person's access token and
// maps the gateway's namespaced names (support/mcp-conformance.mjs); a third run without the
// name mapping shows which scenarios depend on the names. Runs the stack from dist/
// (`pnpm build` first) on a private database and nats-server.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { spawnConformanceMcp } from '@context-gateway/mcp-upstreams';
import { RpcClient } from '@context-gateway/messaging';
import { startSimulator } from '@context-gateway/source-simulators';

import { startBenchStack } from '../../services/personal-server/bench/bench-stack.mjs';
import {
  conformanceOrg,
  conformanceStackEnv,
  resultTable,
  runConformance,
  startAgentAdapter,
} from '../support/mcp-conformance.mjs';

const rootDir = fileURLToPath(new URL('../..', import.meta.url));
if (
  !existsSync(join(rootDir, 'services/gateway/dist/main.js')) ||
  !existsSync(join(rootDir, 'tools/mcp-upstreams/dist/cli.js'))
) {
  console.error('not built: run `pnpm build` first');
  process.exit(1);
}
const OPERATOR_TOKEN = `conformance-${randomUUID()}${randomUUID()}`;

const sim = await startSimulator({ provider: 'github' });
const upstream = await spawnConformanceMcp();
console.log('starting the stack …');
const bench = await startBenchStack('mcpconf', {
  OPERATOR_TOKEN,
  ...conformanceStackEnv(sim.url),
}).catch(async (error) => {
  await upstream.stop();
  await sim.stop();
  throw error;
});
const adapters = [];
try {
  const gatewayUrl = `http://localhost:${new URL(bench.stack.urls.gateway).port}`;
  const { accessToken } = await conformanceOrg({
    gatewayUrl,
    operatorToken: OPERATOR_TOKEN,
    broker: new RpcClient(bench.nc),
    sim,
    upstreamUrl: upstream.url,
  });
  const adapter = (integration) =>
    startAgentAdapter({ target: `${gatewayUrl}/mcp`, authorization: `Bearer ${accessToken}`, integration }).then(
      (a) => (adapters.push(a), a),
    );
  const mapped = await adapter('github');
  const unmapped = await adapter(undefined);
  const direct = await runConformance(upstream.url);
  const gateway = await runConformance(mapped.url);
  const asListed = await runConformance(unmapped.url);
  console.table(
    resultTable({ 'upstream directly': direct, 'through the gateway': gateway, 'gateway, names as listed': asListed }),
  );
  const lost = [...direct.values()].filter((r) => r.passed && !gateway.get(r.scenario)?.passed);
  console.log(
    lost.length === 0
      ? 'every scenario that passes directly passes through the gateway'
      : `passes directly, fails through the gateway: ${lost.map((r) => r.scenario).join(', ')}`,
  );
  for (const r of lost) console.log(`  ${r.scenario}: ${gateway.get(r.scenario)?.failures.join('; ')}`);
  process.exitCode = lost.length === 0 ? 0 : 1;
} finally {
  for (const a of adapters) await a.stop();
  await bench.stop();
  await upstream.stop();
  await sim.stop();
}
