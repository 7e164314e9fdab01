import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * What every test upstream does before its own checks: `GET /_seen` lists every
 * Authorization header it received (so a test can prove no gateway token reached it),
 * anything but `/mcp` is 404, and on `/mcp` the header is recorded and its bearer token
 * returned. `undefined`: the request is answered already.
 */
export function bearerAtMcp(
  req: IncomingMessage,
  res: ServerResponse,
  path: string | undefined,
  seen: (string | null)[],
  /** More of the upstream's state for `/_seen` (e.g. its open streams). */
  extra: () => Record<string, unknown> = () => ({}),
): { token: string | undefined } | undefined {
  if (path === '/_seen' && req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ authorization: seen, ...extra() }));
    return undefined;
  }
  if (path !== '/mcp') {
    res.writeHead(404).end();
    return undefined;
  }
  const header = req.headers.authorization ?? null;
  seen.push(header);
  return { token: /^Bearer (\S+)$/.exec(header ?? '')?.[1] };
}
