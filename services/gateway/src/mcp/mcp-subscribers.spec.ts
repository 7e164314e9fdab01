import { createLogger, currentRequestContext, runWithRequestContext } from '@context-gateway/observability';
import { describe, expect, it } from '@jest/globals';
import type { ServerEvent } from '@modelcontextprotocol/server';

import { McpSubscribers, type StreamCaller } from './mcp-subscribers.js';

// Who is told of a change: only the streams whose caller's visible list moved, each once.
const logger = createLogger({ service: 'gateway-test', level: 'silent' });
const caller = (person: string, app = 'app-1', org = 'org-1') =>
  ({ orgId: org, applicationId: app, onBehalfOf: person }) as StreamCaller;

/** Lets queued comparisons (promise chains) run to the end. */
const settled = () => new Promise((resolve) => setImmediate(resolve));

function setup() {
  const subscribers = new McpSubscribers(logger);
  // What each person may see now, as the gateway would digest it.
  const visible = new Map<string, string>();
  subscribers.configure((c) => Promise.resolve(visible.get(c.onBehalfOf) ?? 'nothing'));
  const told = new Map<string, ServerEvent[]>();
  const stream = (c: StreamCaller, name: string) => {
    told.set(name, []);
    return subscribers.add(c, (event) => told.get(name)?.push(event));
  };
  return { subscribers, visible, told, stream };
}

describe('McpSubscribers', () => {
  it("tells only the streams whose caller's list moved, and each of their streams once", async () => {
    const { subscribers, visible, told, stream } = setup();
    visible.set('alice', 'a1').set('bob', 'b1');
    stream(caller('alice'), 'alice-listen');
    stream(caller('alice'), 'alice-get');
    stream(caller('bob'), 'bob-listen');
    await settled();
    visible.set('alice', 'a2');
    subscribers.check('org-1');
    await settled();
    expect(told.get('alice-listen')).toEqual([{ kind: 'tools_list_changed' }]);
    expect(told.get('alice-get')).toEqual([{ kind: 'tools_list_changed' }]);
    expect(told.get('bob-listen')).toEqual([]);
    // Nothing moved since: a further change of the org tells nobody.
    subscribers.check('org-1');
    await settled();
    expect(told.get('alice-listen')).toHaveLength(1);
  });

  it("checks one person's streams for their change, and never another org's", async () => {
    const { subscribers, visible, told, stream } = setup();
    stream(caller('alice'), 'alice');
    stream(caller('carol', 'app-1', 'org-2'), 'carol');
    await settled();
    visible.set('alice', 'moved').set('carol', 'moved');
    subscribers.check('org-1', 'bob');
    await settled();
    expect(told.get('alice')).toEqual([]);
    subscribers.check('org-1', 'alice');
    await settled();
    expect(told.get('alice')).toHaveLength(1);
    expect(told.get('carol')).toEqual([]);
  });

  it('counts streams per application and person, forgets closed ones, and hears no caller-less subscribe', async () => {
    const { subscribers, told, stream } = setup();
    const close = stream(caller('alice'), 'one');
    stream(caller('alice'), 'two');
    stream(caller('alice', 'app-2'), 'other-app');
    expect(subscribers.count(caller('alice'))).toBe(2);
    expect(subscribers.total).toBe(3);
    close();
    close();
    expect(subscribers.count(caller('alice'))).toBe(1);
    expect(subscribers.listening('org-1', 'alice')).toBe(true);
    expect(subscribers.listening('org-1', 'bob')).toBe(false);
    // The SDK's router subscribing outside a gateway request is given nothing.
    subscribers.bus.subscribe(() => told.set('stray', []));
    expect(subscribers.total).toBe(2);
    // Within a request, the router's subscribe joins that caller's group.
    const unsubscribe = subscribers.within(caller('bob'), () => subscribers.bus.subscribe(() => undefined));
    expect(subscribers.count(caller('bob'))).toBe(1);
    unsubscribe();
    expect(subscribers.listening('org-1', 'bob')).toBe(false);
    await settled();
  });

  it("compares outside the request whose stream opened the group (its ids are not the later work's)", async () => {
    const subscribers = new McpSubscribers(logger);
    const comparedIn: (string | undefined)[] = [];
    subscribers.configure(() => {
      comparedIn.push(currentRequestContext()?.requestId);
      return Promise.resolve('same');
    });
    runWithRequestContext({ requestId: 'stream-request' }, () => subscribers.add(caller('alice'), () => undefined));
    await settled();
    subscribers.check('org-1');
    await settled();
    expect(comparedIn).toEqual([undefined, undefined]);
  });
});
