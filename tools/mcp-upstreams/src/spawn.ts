import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export interface UpstreamProcess {
  url: string;
  pid: number;
  /** Every Authorization header the upstream received, in order (null: none sent). */
  seenAuthorizations(): Promise<(string | null)[]>;
  /** How many 2025-11-25 GET streams (standalone, for notifications) are open now. */
  openStreams(): Promise<number>;
  /** Lists `search_code` or stops listing it (a tool list that changes); listening clients are told. */
  offerSearchCode(offered: boolean): Promise<void>;
  stop(): Promise<void>;
}

/** Runs the GitHub-shaped upstream as a separate process (from dist/: `pnpm build` first). */
export async function spawnGithubMcp(
  githubApiUrl: string,
  options: { faultyTools?: boolean; legacyOnly?: boolean; toolsTtlMs?: number } = {},
): Promise<UpstreamProcess> {
  const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
  const child = spawn(
    process.execPath,
    [
      cli,
      '--github-api',
      githubApiUrl,
      ...(options.faultyTools ? ['--faulty-tools'] : []),
      ...(options.legacyOnly ? ['--legacy-only'] : []),
      ...(options.toolsTtlMs !== undefined ? ['--tools-ttl-ms', String(options.toolsTtlMs)] : []),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines = createInterface({ input: child.stdout });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`mcp upstream exited with ${code} before listening`)));
    lines.once('line', (line) => resolve((JSON.parse(line) as { url: string }).url));
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    url,
    pid: child.pid ?? 0,
    async seenAuthorizations() {
      const res = await fetch(new URL('/_seen', url));
      return ((await res.json()) as { authorization: (string | null)[] }).authorization;
    },
    async openStreams() {
      const res = await fetch(new URL('/_seen', url));
      return ((await res.json()) as { openStreams: number }).openStreams;
    },
    async offerSearchCode(offered: boolean) {
      await fetch(new URL('/_control/tools', url), { method: 'POST', body: JSON.stringify({ searchCode: offered }) });
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
