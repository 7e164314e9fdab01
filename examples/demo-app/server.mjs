#!/usr/bin/env node
// @ts-check
// The smallest useful app backend for Context Gateway, in plain Node (no framework), written
// the way a real app backend would be, with the SDK (@context-gateway/node) for every call:
//   - on first run it asks the operator's admin API for an organization (allowing the
//     integrations it offers), an application (with its exact callback URL) and an API key,
//     and keeps them in .data/demo-app.json;
//   - "Connect" starts a connect session with the API key and sends the browser to connectUrl;
//   - /callback checks the state it generated, then reads the connection with its API key.
// Run it through `pnpm demo` (which builds and starts everything), or alone against a running
// gateway after `pnpm build`:
//   GATEWAY_URL=http://localhost:8080 OPERATOR_TOKEN=... node examples/demo-app/server.mjs
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';

/** @typedef {typeof import('../../sdk/node/src/index.js')} Sdk */
/** @typedef {import('../../sdk/node/src/index.js').GatewayError} GatewayError */
/** @typedef {import('../../sdk/node/src/index.js').Connection} Connection */

// examples/ are standalone (no dependencies, not workspace packages), so the app loads the
// SDK's build by path; `pnpm build` builds ./sdk/**. Types come from the sources.
const SDK_URL = new URL('../../sdk/node/dist/index.js', import.meta.url);

/** @returns {Promise<Sdk>} */
async function loadSdk() {
  if (!existsSync(SDK_URL)) throw new Error('The SDK is not built (sdk/node/dist is missing): run `pnpm build` first.');
  return import(SDK_URL.href);
}

/** The integrations this app offers, with the scopes it asks for. */
export const OFFERS = {
  demo: { label: 'Demo Notes', scopes: ['demo:read:profile', 'demo:read:notes'], reads: 'document.note' },
  'demo-keys': { label: 'Demo Keys (API key)', scopes: ['demo-keys:read:notes'], reads: 'document.note' },
  github: { label: 'GitHub', scopes: ['github:read:profile', 'github:read:repos'], reads: 'code.repository' },
  spotify: { label: 'Spotify', scopes: ['spotify:read:profile', 'spotify:read:playlists'], reads: 'media.playlist' },
  listenbrainz: {
    label: 'ListenBrainz (user token)',
    scopes: ['listenbrainz:read:listens'],
    reads: 'media.play_event',
  },
};

const esc = (/** @type {unknown} */ v) => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * A refusal in words, from the gateway's stable code and its detail (safe to show), with
 * the request id to quote to support.
 * @param {GatewayError} error
 * @param {{ orgId: string }} credentials
 */
function explain(error, credentials) {
  const id = error.requestId ? ` (request ${error.requestId})` : '';
  switch (error.code) {
    case 'policy_denied':
      return `A policy refused: ${error.detail}${id}. An organization allows no integration until its operator lists it: pnpm cg integrations get --org ${credentials.orgId}`;
    case 'unauthenticated':
      return `The gateway did not accept this app's API key: ${error.detail}${id}. Restart the app: it registers again.`;
    default:
      return `${error.detail} [${error.code}]${id}`;
  }
}

/**
 * @param {{ gatewayUrl: string, operatorToken: string, port?: number, host?: string, stateFile: string, log?: (line: string) => void }} options
 */
export async function startDemoApp(options) {
  const log = options.log ?? ((line) => console.log(line));
  const port = options.port ?? 3000;
  const publicUrl = `http://localhost:${port}`;
  const callbackUrl = `${publicUrl}/callback`;
  const sdk = await loadSdk();
  const credentials = await loadOrRegister(sdk, options, callbackUrl, log);
  const cg = new sdk.ContextGateway({ baseUrl: options.gatewayUrl, apiKey: credentials.apiKey });
  /** States we sent with connect sessions (the app's own CSRF check on its callback). */
  const pendingStates = new Map();
  /** @type {Connection[]} Connections this app received, newest first. */
  const connections = [];

  const page = (/** @type {string} */ title, /** @type {string} */ body) =>
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem}button{font:inherit;padding:.4rem 1rem;margin:.2rem}pre{background:#f4f4f4;padding:1rem;overflow:auto}</style>
</head><body><h1>${esc(title)}</h1>${body}</body></html>`;

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', publicUrl);
    const send = (
      /** @type {number} */ status,
      /** @type {string} */ html,
      /** @type {Record<string, string>} */ headers = {},
    ) => {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...headers }).end(html);
    };
    try {
      if (req.method === 'GET' && url.pathname === '/') {
        const buttons = Object.entries(OFFERS)
          .map(
            ([key, offer]) =>
              `<form method="post" action="/connect"><input type="hidden" name="integration" value="${esc(key)}"><button>Connect ${esc(offer.label)}</button></form>`,
          )
          .join('');
        const list = connections.length
          ? `<h2>Connections this app holds</h2><pre>${esc(JSON.stringify(connections, null, 2))}</pre>`
          : '<p>No connection yet.</p>';
        return send(
          200,
          page(
            'Demo app',
            `<p>This app never sees your passwords or tokens: Context Gateway asks for your consent and keeps the credentials.</p>${buttons}${list}`,
          ),
        );
      }
      if (req.method === 'POST' && url.pathname === '/connect') {
        const form = new URLSearchParams(await readBody(req));
        const integration = form.get('integration') ?? '';
        const offer = OFFERS[/** @type {keyof typeof OFFERS} */ (integration)];
        if (!offer) return send(400, page('Unknown integration', ''));
        const state = randomBytes(16).toString('base64url');
        let session;
        try {
          session = await cg.connect.createSession({ integration, scopes: offer.scopes, callbackUrl, state });
        } catch (error) {
          if (!(error instanceof sdk.GatewayError)) throw error;
          return send(
            502,
            page(
              'Could not start connecting',
              `<p>${esc(explain(error, credentials))}</p><pre>${esc(JSON.stringify(error.problem ?? { code: error.code, detail: error.detail }, null, 2))}</pre>`,
            ),
          );
        }
        pendingStates.set(state, Date.now());
        log(`demo-app: connect session ${session.id} for ${integration}`);
        return send(303, '', { location: session.connectUrl });
      }
      if (req.method === 'GET' && url.pathname === '/callback') {
        const state = url.searchParams.get('state') ?? '';
        if (!pendingStates.delete(state))
          return send(
            400,
            page(
              'Unexpected callback',
              '<p>This callback does not answer a connect session this app started.</p><p><a href="/">Back</a></p>',
            ),
          );
        const error = url.searchParams.get('error');
        if (error)
          return send(
            200,
            page('Not connected', `<p>Context Gateway said: <code>${esc(error)}</code></p><p><a href="/">Back</a></p>`),
          );
        const connectionId = url.searchParams.get('connectionId') ?? '';
        let connection;
        try {
          connection = await cg.connections.get(connectionId);
        } catch (error) {
          if (!(error instanceof sdk.GatewayError)) throw error;
          log(`demo-app: callback with connection ${connectionId} → ${error.code}`);
          return send(
            200,
            page(
              'Could not read the connection',
              `<p>${esc(explain(error, credentials))}</p><pre>${esc(JSON.stringify(error.problem ?? { code: error.code, detail: error.detail }, null, 2))}</pre><p><a href="/">Back</a></p>`,
            ),
          );
        }
        connections.unshift(connection);
        log(`demo-app: callback with connection ${connectionId} → ${connection.status}`);
        return send(
          200,
          page(
            'Connected',
            `<p>GET /v1/connections/${esc(connectionId)} (<code>cg.connections.get</code>) answered:</p><pre>${esc(JSON.stringify(connection, null, 2))}</pre>` +
              `<p><a href="/records?connectionId=${encodeURIComponent(connectionId)}">Read its records</a> (the first sync takes a few seconds)</p><p><a href="/">Back</a></p>`,
          ),
        );
      }
      if (req.method === 'GET' && url.pathname === '/records') {
        const connectionId = url.searchParams.get('connectionId') ?? '';
        try {
          const connection = await cg.connections.get(connectionId);
          const type = OFFERS[/** @type {keyof typeof OFFERS} */ (connection.integration)]?.reads;
          if (!type) return send(404, page('Not found', '<p>This app reads nothing from that source.</p>'));
          const records = await cg.records.list(connectionId, { type, limit: 20 });
          const synced = records.syncedAt
            ? `last synced ${esc(records.syncedAt)}`
            : 'not synced yet: reload in a moment';
          return send(
            200,
            page(
              'Records',
              `<p>GET /v1/connections/${esc(connectionId)}/records?type=${esc(type)} (<code>cg.records.list</code>), ${synced}:</p>` +
                `<p id="count">${records.records.length} record(s) on this page</p><pre>${esc(JSON.stringify(records.records, null, 2))}</pre><p><a href="/">Back</a></p>`,
            ),
          );
        } catch (error) {
          if (!(error instanceof sdk.GatewayError)) throw error;
          return send(
            200,
            page(
              'Could not read the records',
              `<p>${esc(explain(error, credentials))}</p><pre>${esc(JSON.stringify(error.problem ?? { code: error.code, detail: error.detail }, null, 2))}</pre><p><a href="/">Back</a></p>`,
            ),
          );
        }
      }
      send(404, page('Not found', ''));
    } catch (error) {
      send(500, page('Error', `<pre>${esc(/** @type {Error} */ (error).message)}</pre>`));
    }
  });
  await new Promise((resolve) => server.listen(port, options.host ?? '127.0.0.1', () => resolve(undefined)));
  return { url: publicUrl, close: () => new Promise((resolve) => server.close(() => resolve(undefined))) };
}

/** @param {import('node:http').IncomingMessage} req */
async function readBody(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 4096) throw new Error('body too large');
  }
  return body;
}

/**
 * The app's organization, application and API key: read from the state file, or created
 * through the admin API (as an operator would with `pnpm cg`) and saved there (mode 0600).
 * @param {Sdk} sdk
 * @param {{ gatewayUrl: string, operatorToken: string, stateFile: string }} options
 * @param {string} callbackUrl
 * @param {(line: string) => void} log
 * @returns {Promise<{ orgId: string, applicationId: string, apiKey: string }>}
 */
async function loadOrRegister(sdk, options, callbackUrl, log) {
  let saved;
  try {
    saved = JSON.parse(await readFile(options.stateFile, 'utf8'));
    const probe = new sdk.ContextGateway({ baseUrl: options.gatewayUrl, apiKey: saved.apiKey });
    await probe.connections.get('00000000-0000-4000-8000-000000000000');
  } catch (error) {
    // connection_not_found: the key works (the connection just does not exist). Anything
    // else (first run, unauthenticated: a different database) registers again.
    if (error instanceof sdk.ConnectionNotFoundError) return saved;
  }
  const admin = sdk.adminClient({ baseUrl: options.gatewayUrl, operatorToken: options.operatorToken });
  /** @param {string} step @param {() => Promise<T>} call @returns {Promise<T>} @template T */
  const asOperator = async (step, call) => {
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof sdk.GatewayError)) throw error;
      throw new Error(`demo-app: could not ${step}: ${error.detail} [${error.code}]`, { cause: error });
    }
  };
  const org = await asOperator('create its organization', () =>
    admin.organizations.create({ name: `Demo Org ${randomBytes(3).toString('hex')}` }),
  );
  // The org layer of policy allows no integration until the operator lists it
  // (docs/policy.md): without this, every records query would be policy_denied.
  await asOperator('allow its integrations', () => admin.integrations.set(org.id, Object.keys(OFFERS)));
  const app = await asOperator('register its application', () =>
    admin.applications.create(org.id, {
      name: 'Demo App',
      callbackUrls: [callbackUrl],
      integrations: Object.keys(OFFERS),
      scopes: Object.values(OFFERS).flatMap((o) => o.scopes),
    }),
  );
  const key = await asOperator('issue its API key', () => admin.apiKeys.issue(app.id));
  saved = { orgId: org.id, applicationId: app.id, apiKey: key.secret };
  await mkdir(dirname(options.stateFile), { recursive: true });
  await writeFile(options.stateFile, JSON.stringify(saved, null, 2), { mode: 0o600 });
  log(`demo-app: registered organization ${org.id} and application ${app.id} (API key saved in ${options.stateFile})`);
  return saved;
}

// Alone: `node examples/demo-app/server.mjs` against a gateway that is already running.
if (import.meta.url === `file://${process.argv[1]}`) {
  const operatorToken = process.env.OPERATOR_TOKEN;
  if (!operatorToken) {
    console.error("Set OPERATOR_TOKEN (the gateway's) so the demo app can register itself on first run.");
    process.exit(2);
  }
  try {
    const app = await startDemoApp({
      gatewayUrl: process.env.GATEWAY_URL ?? 'http://localhost:8080',
      operatorToken,
      port: Number(process.env.PORT ?? 3000),
      stateFile: join(process.cwd(), '.data', 'demo-app.json'),
    });
    console.log(`Demo app at ${app.url}`);
  } catch (error) {
    console.error(/** @type {Error} */ (error).message);
    process.exit(1);
  }
}
