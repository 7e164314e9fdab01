// @ts-check
// Container health probe: `node /usr/local/lib/context-gateway/healthcheck.mjs [/healthz|/readyz]`.
// The slim image has no curl or wget, and Node's fetch is enough. Exits 0 on HTTP 200.
// The port comes from HTTP_PORT, else the service's default (the image sets SERVICE) from
// services.json, the copy of the project's one service list that the Dockerfile puts beside it.
import { readFileSync } from 'node:fs';

/** @type {{ name: string, httpPort: number }[]} */
const services = JSON.parse(readFileSync(new URL('./services.json', import.meta.url), 'utf8'));

const path = process.argv[2] ?? '/healthz';
const port = process.env.HTTP_PORT ?? services.find((s) => s.name === process.env.SERVICE)?.httpPort;
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
