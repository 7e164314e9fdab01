// @ts-check
// Container health probe: `node /usr/local/lib/context-gateway/healthcheck.mjs [/healthz|/readyz]`.
// The slim image has no curl or wget, and Node's fetch is enough. Exits 0 on HTTP 200.
// The port comes from HTTP_PORT, else the service's default (the image sets SERVICE).
/** @type {Record<string, number>} */
const DEFAULT_PORTS = {
  gateway: 8080,
  identity: 8081,
  policy: 8082,
  'connection-broker': 8083,
  audit: 8084,
  'personal-server': 8085,
  'sync-worker': 8086,
};

const path = process.argv[2] ?? '/healthz';
const port = process.env.HTTP_PORT ?? DEFAULT_PORTS[process.env.SERVICE ?? ''];
if (!port) {
  console.error('healthcheck: set HTTP_PORT or SERVICE');
  process.exit(2);
}

try {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(3000) });
  if (response.status !== 200)
    console.error(`healthcheck: ${path} answered ${response.status}: ${(await response.text()).slice(0, 200)}`);
  process.exit(response.status === 200 ? 0 : 1);
} catch (error) {
  const { cause, message } = /** @type {Error & { cause?: { code?: string } }} */ (error);
  console.error(`healthcheck: ${path} unreachable: ${cause?.code ?? message}`);
  process.exit(1);
}
