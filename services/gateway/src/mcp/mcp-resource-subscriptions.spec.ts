import { TestClock } from '@context-gateway/clock/testing';
import { AppError } from '@context-gateway/errors';
import { describe, expect, it } from '@jest/globals';
import pino from 'pino';

import type { Env } from '../env.js';
import { McpResourceSubscriptions, type ResourceSubscription } from './mcp-resource-subscriptions.js';
import type { McpServerView } from './mcp-server-view.js';
import type { StreamCaller } from './mcp-subscribers.js';
import type { McpUpstream, UpstreamListener } from './mcp-upstream.js';

const settle = async () => {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
};

/** The upstream side as the registry sees it: which URI sets were opened and closed, and a way to send an update. */
function upstreamDouble() {
  const opened: { uris: string[]; closed: boolean; onUpdated: (uri: string) => void }[] = [];
  const upstream = {
    watchResources: (_server: unknown, _token: unknown, uris: readonly string[], onUpdated: (uri: string) => void) => {
      const entry = { uris: [...uris], closed: false, onUpdated };
      opened.push(entry);
      const listener: UpstreamListener = {
        ended: new Promise(() => undefined),
        close: () => {
          entry.closed = true;
          return Promise.resolve();
        },
      };
      return Promise.resolve(listener);
    },
  };
  const open = () => opened.filter((o) => !o.closed);
  return { upstream: upstream as unknown as McpUpstream, opened, open };
}

const server = { integration: 'github', url: 'https://mcp.example/mcp' } as McpServerView;
const caller = (applicationId: string, onBehalfOf = 'u1'): StreamCaller =>
  ({ orgId: 'o1', applicationId, onBehalfOf, accessTokenId: `t-${applicationId}` }) as StreamCaller;

function registry(max = 3) {
  const double = upstreamDouble();
  const clock = new TestClock(new Date('2026-12-01T00:00:00Z'));
  const env = { MCP_MAX_RESOURCE_SUBSCRIPTIONS: max, MCP_MAX_UPSTREAM_LISTENERS: 10 } as Env;
  const subs = new McpResourceSubscriptions(double.upstream, clock, env, pino({ level: 'silent' }));
  const readable = new Set<string>(['a', 'b']);
  const told: { app: string; uri: string }[] = [];
  subs.configure({
    mayRead: (s) => Promise.resolve(readable.has(s.caller.applicationId)),
    tellListeners: (c, uri) => void told.push({ app: c.applicationId, uri }),
  });
  const sub = (app: string, uri: string, era: ResourceSubscription['era'] = 'modern') => ({
    caller: caller(app),
    server,
    uri: `github+${uri}`,
    upstreamUri: uri,
    era,
    token: () => Promise.resolve('person-token'),
  });
  return { subs, double, readable, told, sub, clock };
}

describe('McpResourceSubscriptions', () => {
  it('subscribes upstream once per server and person, to the union of their URIs', async () => {
    const { subs, double, sub } = registry(10);
    const releaseA = subs.add([sub('a', 'x://1'), sub('a', 'x://2')]);
    const releaseB = subs.add([sub('b', 'x://1')]);
    await settle();
    expect(double.open().map((o) => o.uris)).toEqual([['x://1', 'x://2']]);
    releaseA();
    await settle();
    expect(double.open().map((o) => o.uris)).toEqual([['x://1']]);
    releaseB();
    await settle();
    expect(double.open()).toEqual([]);
  });

  it('delivers an update under the gateway URI to subscribers who may still read it, and ends the others', async () => {
    const { subs, double, sub, told, readable } = registry(10);
    const delivered: string[] = [];
    subs.add([sub('a', 'x://1'), sub('b', 'x://1', 'legacy'), sub('a', 'x://2')]);
    subs.legacyStream(caller('b'), (uri) => delivered.push(uri));
    await settle();
    double.open()[0]?.onUpdated('x://1');
    await settle();
    expect(told).toEqual([{ app: 'a', uri: 'github+x://1' }]);
    expect(delivered).toEqual(['github+x://1']);

    // b's access went: its subscription ends at the next update; a's is unaffected.
    readable.delete('b');
    double.open()[0]?.onUpdated('x://1');
    await settle();
    expect(told).toHaveLength(2);
    expect(delivered).toEqual(['github+x://1']);
    readable.add('b');
    double.open()[0]?.onUpdated('x://1');
    await settle();
    expect(delivered).toEqual(['github+x://1']);
  });

  it('ends subscriptions whose caller may no longer read when the org changes', async () => {
    const { subs, double, sub, readable } = registry(10);
    subs.add([sub('b', 'x://9')]);
    await settle();
    expect(double.open()).toHaveLength(1);
    readable.delete('b');
    subs.recheck('o1');
    await settle();
    expect(double.open()).toEqual([]);
  });

  it('refuses past the person’s cap, counting every application, all or nothing', async () => {
    const { subs, sub, double } = registry(3);
    subs.add([sub('a', 'x://1'), sub('b', 'x://2')]);
    let refused: unknown;
    try {
      subs.add([sub('a', 'x://3'), sub('a', 'x://4')]);
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(AppError);
    expect((refused as AppError).code).toBe('rate_limited');
    await settle();
    expect(double.open().map((o) => o.uris)).toEqual([['x://1', 'x://2']]);
    // Another person has their own allowance.
    expect(() =>
      subs.add([
        { ...sub('a', 'x://3'), caller: caller('a', 'u2') },
        { ...sub('a', 'x://4'), caller: caller('a', 'u2') },
      ]),
    ).not.toThrow();
  });

  it('a 2025-11-25 subscription is one per caller and URI, until unsubscribed', async () => {
    const { subs, sub, double } = registry(2);
    subs.add([sub('a', 'x://1', 'legacy')]);
    subs.add([sub('a', 'x://1', 'legacy')]);
    subs.add([sub('a', 'x://2', 'legacy')]);
    await settle();
    expect(double.open().map((o) => o.uris)).toEqual([['x://1', 'x://2']]);
    subs.unsubscribe(caller('a'), 'github+x://1');
    subs.unsubscribe(caller('a'), 'github+x://never');
    await settle();
    expect(double.open().map((o) => o.uris)).toEqual([['x://2']]);
  });

  it('opens nothing upstream when shut down while the person’s token was looked up', async () => {
    const { subs, double, sub } = registry(10);
    let release!: (token: string) => void;
    const held = new Promise<string>((resolve) => (release = resolve));
    subs.add([{ ...sub('a', 'x://1'), token: () => held }]);
    await settle();
    await subs.onApplicationShutdown();
    release('person-token');
    await settle();
    expect(double.opened).toEqual([]);
  });
});
