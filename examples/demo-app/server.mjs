#!/usr/bin/env node
// @ts-check
// The smallest useful app backend for Context Gateway, in plain Node (no framework, no
// dependencies), written the way a real app backend would be:
//   - on first run it asks the operator's admin API for an organization, an application
//     (with its exact callback URL) and an API key, and keeps them in .data/demo-app.json;
//   - "Connect" starts a connect session with the API key and sends the browser to connectUrl;
//   - /callback checks the state it generated, then reads the connection with its API key.
// Run it through `pnpm demo` (which starts everything), or alone against a running gateway:
//   GATEWAY_URL=http://localhost:8080 OPERATOR_TOKEN=... node examples/demo-app/server.mjs
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';

/** The integrations this app offers, with the scopes it asks for. */
export const OFFERS = {
  demo: { label: 'Demo Notes', scopes: ['demo:read:profile', 'demo:read:notes'] },
  'demo-keys': { label: 'Demo Keys (API key)', scopes: ['demo-keys:read:notes'] },
  github: { label: 'GitHub', scopes: ['github:read:profile', 'github:read:repos'] },
  spotify: { label: 'Spotify', scopes: ['spotify:read:profile', 'spotify:read:playlists'] },
};

const esc = (/** @type {unknown} */ v) => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * @param {{ gatewayUrl: string, operatorToken: string, port?: number, host?: string, stateFile: string, log?: (line: string) => void }} options
 */
export async function startDemoApp(options) {
  const log = options.log ?? ((line) => console.log(line));
  const port = options.port ?? 3000;
  const publicUrl = `http://localhost:${port}`;
  const callbackUrl = `${publicUrl}/callback`;
  const credentials = await loadOrRegister(options, callbackUrl, log);
  /** States we sent with connect sessions (the app's own CSRF check on its callback). */
  const pendingStates = new Map();
  /** Connections this app received, newest first. */
  const connections = [];

  const gateway = async (/** @type {string} */ method, /** @type {string} */ path, /** @type {unknown} */ body) => {
    const res = await fetch(`${options.gatewayUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${credentials.apiKey}`,
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: await res.json().catch(() => ({})) };
  };

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
        const created = await gateway('POST', '/v1/connect/sessions', {
          integration,
          scopes: offer.scopes,
          callbackUrl,
          state,
        });
        if (created.status !== 201)
          return send(
            502,
            page('Could not start connecting', `<pre>${esc(JSON.stringify(created.body, null, 2))}</pre>`),
          );
        pendingStates.set(state, Date.now());
        log(`demo-app: connect session ${created.body.id} for ${integration}`);
        return send(303, '', { location: created.body.connectUrl });
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
        const connection = await gateway('GET', `/v1/connections/${encodeURIComponent(connectionId)}`);
        if (connection.status === 200) connections.unshift(connection.body);
        log(`demo-app: callback with connection ${connectionId} → ${connection.status}`);
        return send(
          200,
          page(
            'Connected',
            `<p>GET /v1/connections/${esc(connectionId)} answered ${connection.status}:</p><pre>${esc(JSON.stringify(connection.body, null, 2))}</pre><p><a href="/">Back</a></p>`,
          ),
        );
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
 * @param {{ gatewayUrl: string, operatorToken: string, stateFile: string }} options
 * @param {string} callbackUrl
 * @param {(line: string) => void} log
 */
async function loadOrRegister(options, callbackUrl, log) {
  try {
    const saved = JSON.parse(await readFile(options.stateFile, 'utf8'));
    const probe = await fetch(`${options.gatewayUrl}/v1/connections/00000000-0000-4000-8000-000000000000`, {
      headers: { authorization: `Bearer ${saved.apiKey}` },
    });
    // 404: the key works (the connection just does not exist). 401: a different database; register again.
    if (probe.status === 404) return saved;
  } catch {
    // first run
  }
  const admin = async (/** @type {string} */ path, /** @type {unknown} */ body) => {
    const res = await fetch(`${options.gatewayUrl}${path}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${options.operatorToken}`,
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    const json = await res.json();
    if (res.status >= 300) throw new Error(`admin ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const org = await admin('/v1/admin/organizations', { name: `Demo Org ${randomBytes(3).toString('hex')}` });
  const app = await admin(`/v1/admin/organizations/${org.id}/applications`, {
    name: 'Demo App',
    callbackUrls: [callbackUrl],
    integrations: Object.keys(OFFERS),
    scopes: Object.values(OFFERS).flatMap((o) => o.scopes),
  });
  const key = await admin(`/v1/admin/applications/${app.id}/api-keys`);
  const saved = { orgId: org.id, applicationId: app.id, apiKey: key.secret };
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
  const app = await startDemoApp({
    gatewayUrl: process.env.GATEWAY_URL ?? 'http://localhost:8080',
    operatorToken,
    port: Number(process.env.PORT ?? 3000),
    stateFile: join(process.cwd(), '.data', 'demo-app.json'),
  });
  console.log(`Demo app at ${app.url}`);
}
