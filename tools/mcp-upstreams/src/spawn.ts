import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import type { TokenRequest } from './oauth-mcp.js';

export interface UpstreamProcess {
  url: string;
  pid: number;
  /** Every Authorization header the upstream received, in order (null: none sent). */
  seenAuthorizations(): Promise<(string | null)[]>;
  /** How many 2025-11-25 GET streams (standalone, for notifications) are open now. */
  openStreams(): Promise<number>;
  /** How many `tools/call` requests named `tool` reached the upstream (2026-07-28 `Mcp-Name`). */
  toolCalls(tool: string): Promise<number>;
  /** Lists `search_code` or stops listing it (a tool list that changes); listening clients are told. */
  offerSearchCode(offered: boolean): Promise<void>;
  /**
   * Lists the resource `github://notifications` and the prompt `triage_issues`, or stops
   * listing them (resource and prompt lists that change); listening clients are told.
   */
  offerExtras(offered: boolean): Promise<void>;
  stop(): Promise<void>;
}

/** The notes server behind its own authorization server (oauth-mcp.ts), as a process. */
export interface OAuthUpstreamProcess {
  url: string;
  issuer: string;
  pid: number;
  seenAuthorizations(): Promise<(string | null)[]>;
  /** Every token request its authorization server answered (grant type, `resource`), in order. */
  tokenRequests(): Promise<TokenRequest[]>;
  /** From now on every token the server has seen is refused (401 `invalid_token`); newer ones are taken. */
  revokeSeenTokens(): Promise<void>;
  stop(): Promise<void>;
}

/** Runs the OAuth-protected notes upstream as a separate process (from dist/: `pnpm build` first). */
export async function spawnOAuthMcp(
  options: {
    accessTokenTtl?: number;
    noRegistration?: boolean;
    preRegistered?: { clientId: string; clientSecret: string; redirectUri: string };
  } = {},
): Promise<OAuthUpstreamProcess> {
  const pre = options.preRegistered;
  const { child, line, exited } = await startCli([
    '--oauth',
    ...(options.accessTokenTtl ? ['--access-token-ttl', String(options.accessTokenTtl)] : []),
    ...(options.noRegistration ? ['--no-registration'] : []),
    ...(pre
      ? ['--client-id', pre.clientId, '--client-secret', pre.clientSecret, '--redirect-uri', pre.redirectUri]
      : []),
  ]);
  const { url, issuer } = JSON.parse(line) as { url: string; issuer: string };
  return {
    url,
    issuer,
    pid: child.pid ?? 0,
    seenAuthorizations: () => seen(url),
    async tokenRequests() {
      const res = await fetch(new URL('/_seen', url));
      return ((await res.json()) as { tokenRequests: TokenRequest[] }).tokenRequests;
    },
    async revokeSeenTokens() {
      const res = await fetch(new URL('/_control/revoke-seen-tokens', url), { method: 'POST' });
      if (res.status !== 204) throw new Error(`revoke-seen-tokens answered ${res.status}`);
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

async function seen(url: string): Promise<(string | null)[]> {
  const res = await fetch(new URL('/_seen', url));
  return ((await res.json()) as { authorization: (string | null)[] }).authorization;
}

/** Starts the CLI and waits for the JSON line it prints once it listens. */
async function startCli(args: string[], nodeArgs: readonly string[] = []) {
  const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
  const child = spawn(process.execPath, [...nodeArgs, cli, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const line = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`mcp upstream exited with ${code} before listening`)));
    lines.once('line', resolve);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { child, line, exited };
}

/** A test upstream as its own process, once it listens. */
export interface SpawnedMcp {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** Runs the conformance suite's "everything" server (conformance-mcp.ts) as a separate process. */
export async function spawnConformanceMcp(): Promise<SpawnedMcp> {
  const { child, line, exited } = await startCli(['--conformance']);
  return {
    url: (JSON.parse(line) as { url: string }).url,
    pid: child.pid ?? 0,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Runs the GitHub-shaped upstream as a separate process (from dist/: `pnpm build` first). */
export async function spawnGithubMcp(
  githubApiUrl: string,
  options: {
    faultyTools?: boolean;
    legacyOnly?: boolean;
    toolsTtlMs?: number;
    /** Node flags for the process (e.g. `--cpu-prof`, which NODE_OPTIONS refuses). */
    nodeArgs?: readonly string[];
  } = {},
): Promise<UpstreamProcess> {
  const { child, line, exited } = await startCli(
    [
      '--github-api',
      githubApiUrl,
      ...(options.faultyTools ? ['--faulty-tools'] : []),
      ...(options.legacyOnly ? ['--legacy-only'] : []),
      ...(options.toolsTtlMs !== undefined ? ['--tools-ttl-ms', String(options.toolsTtlMs)] : []),
    ],
    options.nodeArgs,
  );
  const { url } = JSON.parse(line) as { url: string };
  return {
    url,
    pid: child.pid ?? 0,
    seenAuthorizations: () => seen(url),
    async openStreams() {
      const res = await fetch(new URL('/_seen', url));
      return ((await res.json()) as { openStreams: number }).openStreams;
    },
    async toolCalls(tool: string) {
      const res = await fetch(new URL('/_seen', url));
      return ((await res.json()) as { toolCalls: Record<string, number> }).toolCalls[tool] ?? 0;
    },
    async offerSearchCode(offered: boolean) {
      await fetch(new URL('/_control/tools', url), { method: 'POST', body: JSON.stringify({ searchCode: offered }) });
    },
    async offerExtras(offered: boolean) {
      await fetch(new URL('/_control/extras', url), { method: 'POST', body: JSON.stringify({ offered }) });
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
