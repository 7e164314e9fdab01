import { TestClock } from '@context-gateway/clock/testing';
import { type RunningGithubMcp, startGithubMcp } from '@context-gateway/mcp-upstreams';
import { connectNats, RpcClient } from '@context-gateway/messaging';
import { type PrivateNats, startPrivateNats } from '@context-gateway/messaging/testing';
import { createLogger, currentRequestContext, runWithRequestContext } from '@context-gateway/observability';
import { obtainTokens, type RunningSimulator, startSimulator } from '@context-gateway/source-simulators';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { NatsConnection } from '@nats-io/transport-node';

import type { Env } from '../env.js';
import { type ListChange, McpListWatcher } from './mcp-list-watch.js';
import type { McpServerView } from './mcp-server-view.js';
import { McpToolCatalog } from './mcp-tool-catalog.js';
import { McpUpstream } from './mcp-upstream.js';

// The gateway's view of a person's tool list against the real test upstream (its own HTTP
// server, the official SDK, bearer tokens checked against the GitHub simulator): read again
// when the list's own ttlMs runs out, and at once when the server says it changed — on
// 2026-07-28 through subscriptions/listen, on 2025-11-25 through the GET stream. No policy
// service answers here: the org catalog's reports fail (logged), and the person's own list —
// what decides whether they may still call a tool — is what these tests watch.
const logger = createLogger({ service: 'gateway-test', level: 'silent' });
const env = {
  MCP_ALLOW_INSECURE_UPSTREAMS: true,
  MCP_ALLOW_PRIVATE_UPSTREAMS: true,
  MCP_UPSTREAM_TIMEOUT_MS: 5_000,
  MCP_UPSTREAM_STREAM_MS: 600_000,
  MCP_MAX_RESULT_BYTES: 4_194_304,
  MCP_TOOLS_TTL_MS: 300_000,
  MCP_TOOLS_RETAIN_UNSEEN_MS: 3_600_000,
  MCP_MAX_UPSTREAM_LISTENERS: 2,
} as Env;
const ORG = '3f8e0d7c-2b1a-4c5d-9e6f-0a1b2c3d4e5f';
const ALICE = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';

let sim: RunningSimulator;
let nats: PrivateNats;
let nc: NatsConnection;
let token: string;
const clock = new TestClock();
let upstream: McpUpstream;
let catalog: McpToolCatalog;
let watcher: McpListWatcher;
const running: RunningGithubMcp[] = [];

beforeAll(async () => {
  sim = await startSimulator({ provider: 'github' });
  await sim.control.createAccount({ login: 'octo-lists', counts: { repos: 1, starred: 0, issues: 0 } });
  token = (await obtainTokens(sim, 'octo-lists', ['repo'])).access_token;
  nats = await startPrivateNats();
  nc = await connectNats({ url: nats.url, name: 'list-watch-test', logger, bootTimeoutMs: 5_000 });
}, 60_000);

afterAll(async () => {
  await nc?.close().catch(() => undefined);
  await nats?.stop();
  await sim?.stop();
});

afterEach(async () => {
  await watcher?.onApplicationShutdown();
  await upstream?.onApplicationShutdown();
  for (const server of running.splice(0)) await server.stop();
});

function gatewayParts(limits: Partial<Env> = {}) {
  const settings = { ...env, ...limits };
  upstream = new McpUpstream(settings);
  catalog = new McpToolCatalog(new RpcClient(nc), upstream, clock, settings, logger);
  watcher = new McpListWatcher(upstream, catalog, settings, logger);
}

async function upstreamServer(options: { legacyOnly?: boolean; toolsTtlMs?: number } = {}) {
  const server = await startGithubMcp({ githubApiUrl: sim.url, ...options });
  running.push(server);
  const view: McpServerView = {
    integration: 'github',
    url: server.url,
    auth: 'connection',
    tools: new Map(),
    toolsDigest: '',
    toolsReadAt: undefined,
    resourceArguments: {},
  };
  const control = (body: { searchCode: boolean; listDelayMs?: number }) =>
    fetch(new URL('/_control/tools', server.url), { method: 'POST', body: JSON.stringify(body) });
  const offerSearchCode = (offered: boolean) => control({ searchCode: offered });
  const offerExtras = (offered: boolean) =>
    fetch(new URL('/_control/extras', server.url), { method: 'POST', body: JSON.stringify({ offered }) });
  const seen = async () =>
    (await (await fetch(new URL('/_seen', server.url))).json()) as {
      openStreams: number;
      toolLists: { received: number; inFlight: number; mostAtOnce: number };
    };
  const openStreams = async () => (await seen()).openStreams;
  const toolLists = async () => (await seen()).toolLists;
  return { view, control, offerSearchCode, offerExtras, openStreams, toolLists };
}

/** The changes the watcher reports, awaited one by one (no timers: each resolves on the event). */
function changes() {
  const seen: ListChange[] = [];
  const waiting: ((c: ListChange) => void)[] = [];
  watcher.onChange((change) => {
    const next = waiting.shift();
    if (next) next(change);
    else seen.push(change);
  });
  return () => {
    const early = seen.shift();
    return early ? Promise.resolve(early) : new Promise<ListChange>((resolve) => waiting.push(resolve));
  };
}

describe("a person's tool list at the gateway", () => {
  it('is read again once the ttlMs the server gave runs out, and not before', async () => {
    gatewayParts();
    const { view, offerSearchCode } = await upstreamServer({ toolsTtlMs: 60_000 });
    const first = await catalog.forPerson(ORG, view, ALICE, token);
    expect(first.names?.has('search_code')).toBe(false);
    await offerSearchCode(true);
    // Fresh for 60 s by the server's word: the kept list answers.
    clock.advance(59_000);
    expect((await catalog.forPerson(ORG, view, ALICE, token)).names?.has('search_code')).toBe(false);
    clock.advance(1_001);
    expect((await catalog.forPerson(ORG, view, ALICE, token)).names?.has('search_code')).toBe(true);
  });

  it('is kept no longer than MCP_TOOLS_TTL_MS even when the server says more', async () => {
    gatewayParts({ MCP_TOOLS_TTL_MS: 10_000 });
    const { view, offerSearchCode } = await upstreamServer({ toolsTtlMs: 3_600_000 });
    expect((await catalog.forPerson(ORG, view, ALICE, token)).names?.has('search_code')).toBe(false);
    await offerSearchCode(true);
    clock.advance(10_001);
    expect((await catalog.forPerson(ORG, view, ALICE, token)).names?.has('search_code')).toBe(true);
  });

  describe.each([
    ['2026-07-28 (subscriptions/listen)', false],
    ['2025-11-25 (the GET stream)', true],
  ] as const)('over %s', (_name, legacyOnly) => {
    /** The watcher following Alice's list of a fresh server, its stream open once the first read is told. */
    async function following() {
      gatewayParts();
      const server = await upstreamServer({ legacyOnly, toolsTtlMs: 3_600_000 });
      const next = changes();
      watcher.wantedBy(() => true);
      watcher.follow(ORG, ALICE, [server.view], () => Promise.resolve(token));
      // Opening reads the list once (a change may have come while nothing listened).
      expect(await next()).toEqual({
        orgId: ORG,
        integration: 'github',
        url: server.view.url,
        userId: ALICE,
        kind: 'tools',
      });
      // 2025-11-25: the SDK asks for the GET stream after initialize, without waiting for it.
      if (legacyOnly) while ((await server.openStreams()) === 0) await new Promise((r) => setTimeout(r, 20));
      return { ...server, next };
    }

    it("follows the server's list_changed at once: a new tool is kept, a withdrawn one is gone", async () => {
      const { view, offerSearchCode, next } = await following();
      expect(catalog.kept(ORG, 'github', ALICE)?.has('search_code')).toBe(false);
      expect(watcher.openCount).toBe(1);

      await offerSearchCode(true);
      await next();
      // Well within the list's hour-long ttlMs: only the notification can have told it.
      expect(catalog.kept(ORG, 'github', ALICE)?.has('search_code')).toBe(true);

      await offerSearchCode(false);
      await next();
      expect(catalog.kept(ORG, 'github', ALICE)?.has('search_code')).toBe(false);
      expect((await catalog.forPerson(ORG, view, ALICE, token)).names?.has('search_code')).toBe(false);
    });

    it("passes on the server's resource and prompt list changes on the same stream, by kind", async () => {
      const { offerExtras, next, view } = await following();
      const person = { orgId: ORG, integration: 'github', url: view.url, userId: ALICE };
      for (const offered of [true, false]) {
        await offerExtras(offered);
        // Both lists changed (told in either order), and nothing else was told.
        const told = [await next(), await next()].sort((a, b) => a.kind.localeCompare(b.kind));
        expect(told).toEqual([
          { ...person, kind: 'prompts' },
          { ...person, kind: 'resources' },
        ]);
      }
      expect(watcher.openCount).toBe(1);
    });

    it('passes a burst of them on one fan-out at a time: once more after the one under way', async () => {
      gatewayParts();
      const server = await upstreamServer({ legacyOnly, toolsTtlMs: 3_600_000 });
      // What the server announced, as the gateway's client heard it (before any fan-out).
      let announcedResources = 0;
      const listen = upstream.listen.bind(upstream);
      upstream.listen = (view, listenToken, told) =>
        listen(view, listenToken, (kind) => {
          if (kind === 'resources') announcedResources++;
          told(kind);
        });
      const next = changes();
      // The first fan-out of resource changes is held until the burst has been announced.
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let fanOuts = 0;
      watcher.onChange((change) => {
        if (change.kind !== 'resources') return;
        fanOuts++;
        return fanOuts === 1 ? held : undefined;
      });
      watcher.wantedBy(() => true);
      watcher.follow(ORG, ALICE, [server.view], () => Promise.resolve(token));
      expect((await next()).kind).toBe('tools');
      if (legacyOnly) while ((await server.openStreams()) === 0) await new Promise((r) => setTimeout(r, 20));
      await server.offerExtras(true);
      while (fanOuts === 0) await new Promise((r) => setTimeout(r, 10));
      // Three more changes while the first is passed on, all heard: one more fan-out, after it.
      for (const offered of [false, true, false]) await server.offerExtras(offered);
      while (announcedResources < 4) await new Promise((r) => setTimeout(r, 10));
      release();
      const told: string[] = [];
      while (told.filter((k) => k === 'resources').length < 2) told.push((await next()).kind);
      expect(fanOuts).toBe(2);
    });
  });

  it('reads a burst of changes one at a time: once more after the read under way, keeping the latest list', async () => {
    gatewayParts();
    const { view, control, toolLists } = await upstreamServer({ toolsTtlMs: 3_600_000 });
    const next = changes();
    watcher.wantedBy(() => true);
    watcher.follow(ORG, ALICE, [view], () => Promise.resolve(token));
    await next();
    expect(catalog.kept(ORG, 'github', ALICE)?.has('search_code')).toBe(false);
    const before = (await toolLists()).received;
    // A slow server (each list answered a second after it was asked for, as it was then)
    // changes its list three times in a row: the first read is under way while the rest are told.
    for (const searchCode of [true, false, true]) await control({ searchCode, listDelayMs: 1_000 });
    // Until two reads were answered (the one under way, and one more after it), none is open,
    // and the gateway keeps the latest list.
    const sleep = () => new Promise((resolve) => setTimeout(resolve, 50));
    let lists = await toolLists();
    while (lists.received < before + 2 || lists.inFlight > 0 || !catalog.kept(ORG, 'github', ALICE)?.has('search_code'))
      lists = await sleep().then(toolLists);
    // Concurrent reads (one per notification) would have asked three or four times, some at once.
    expect(lists.received).toBe(before + 2);
    expect(lists.mostAtOnce).toBe(1);
  });

  it('reconnects after the server went away, and catches a change made while no stream was open', async () => {
    gatewayParts();
    const first = await upstreamServer({ toolsTtlMs: 3_600_000 });
    const port = Number(new URL(first.view.url).port);
    const next = changes();
    watcher.wantedBy(() => true);
    watcher.follow(ORG, ALICE, [first.view], () => Promise.resolve(token));
    await next();
    expect(catalog.kept(ORG, 'github', ALICE)?.has('search_code')).toBe(false);
    // The server restarts (its streams cut) and, while the gateway has no stream, adds a tool.
    await running.shift()?.stop();
    const again = await startGithubMcp({ githubApiUrl: sim.url, port, toolsTtlMs: 3_600_000 });
    running.push(again);
    await fetch(new URL('/_control/tools', again.url), { method: 'POST', body: JSON.stringify({ searchCode: true }) });
    // The next stream (after the backoff) reads the list once: the change is caught.
    await next();
    expect(catalog.kept(ORG, 'github', ALICE)?.has('search_code')).toBe(true);
    expect(watcher.openCount).toBe(1);
  }, 30_000);

  it('keeps at most MCP_MAX_UPSTREAM_LISTENERS streams, and stops following a server that left the view', async () => {
    gatewayParts({ MCP_MAX_UPSTREAM_LISTENERS: 1 });
    const one = await upstreamServer({ toolsTtlMs: 3_600_000 });
    const two = await upstreamServer({ toolsTtlMs: 3_600_000 });
    const next = changes();
    watcher.wantedBy(() => true);
    watcher.follow(ORG, ALICE, [one.view, { ...two.view, integration: 'github2' }], () => Promise.resolve(token));
    expect((await next()).integration).toBe('github');
    expect(watcher.openCount).toBe(1);
    // The first server is no longer in the org's view: its stream closes, the second may open.
    watcher.follow(ORG, ALICE, [{ ...two.view, integration: 'github2' }], () => Promise.resolve(token));
    expect((await next()).integration).toBe('github2');
    expect(watcher.openCount).toBe(1);
  });

  it('opens nothing upstream for a server dropped while the person’s token was looked up', async () => {
    gatewayParts();
    const { view } = await upstreamServer({ toolsTtlMs: 3_600_000 });
    // The real client, observed: every stream the watcher asks it for.
    const listen = upstream.listen.bind(upstream);
    let listens = 0;
    upstream.listen = (...args) => {
      listens++;
      return listen(...args);
    };
    let asked!: () => void;
    const tokenAsked = new Promise<void>((resolve) => (asked = resolve));
    let release!: (token: string) => void;
    const held = new Promise<string>((resolve) => (release = resolve));
    watcher.wantedBy(() => true);
    watcher.follow(ORG, ALICE, [view], () => {
      asked();
      return held;
    });
    await tokenAsked;
    // The server left the org's view while the token was looked up.
    watcher.follow(ORG, ALICE, [], () => Promise.resolve(token));
    release(token);
    for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(listens).toBe(0);
    expect(watcher.openCount).toBe(0);
  });

  it('opens once the org changes after the person connected, not after the wait for a token', async () => {
    gatewayParts();
    const { view } = await upstreamServer({ toolsTtlMs: 3_600_000 });
    const next = changes();
    const person: { token?: string } = {};
    let asked!: () => void;
    const tokenAsked = new Promise<void>((resolve) => (asked = resolve));
    watcher.wantedBy(() => true);
    watcher.follow(ORG, ALICE, [view], () => {
      asked();
      return Promise.resolve(person.token);
    });
    // Not connected: no stream, and the next try would be a minute away.
    await tokenAsked;
    for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(watcher.openCount).toBe(0);
    // They connect (a grant of the org changes): the stream opens and the list is read now.
    person.token = token;
    watcher.recheck(ORG);
    expect((await next()).integration).toBe('github');
    expect(watcher.openCount).toBe(1);
  });

  it('runs its streams, reads and retries outside the request that asked to follow', async () => {
    gatewayParts();
    const { view, offerSearchCode } = await upstreamServer({ toolsTtlMs: 3_600_000 });
    const next = changes();
    // What request each piece of the watcher's work ran in (its logs and spans carry it).
    const seenIn: (string | undefined)[] = [];
    watcher.onChange(() => void seenIn.push(currentRequestContext()?.requestId));
    watcher.wantedBy(() => true);
    runWithRequestContext({ requestId: 'first-mcp-request' }, () =>
      watcher.follow(ORG, ALICE, [view], () => {
        seenIn.push(currentRequestContext()?.requestId);
        return Promise.resolve(token);
      }),
    );
    await next();
    await offerSearchCode(true);
    await next();
    expect(seenIn.length).toBeGreaterThanOrEqual(4);
    expect(seenIn.filter((id) => id !== undefined)).toEqual([]);
  });
});
