import { createLogger, currentRequestContext, runWithRequestContext } from '@context-gateway/observability';
import { describe, expect, it } from '@jest/globals';
import type { ServerEvent } from '@modelcontextprotocol/server';

import { McpSubscribers, type StreamCaller } from './mcp-subscribers.js';

// Who is told of a change: only the streams whose caller's visible list moved, each once.
const logger = createLogger({ service: 'gateway-test', level: 'silent' });
const caller = (person: string, app = 'app-1', org = 'org-1') =>
  ({ orgId: org, applicationId: app, onBehalfOf: person }) as StreamCaller;
/** The same person's caller at a virtual server, as its selection was when the stream opened. */
const at = (c: StreamCaller, name: string, selection = 'sel-1'): StreamCaller => ({
  ...c,
  virtualServer: { name, selection },
});

/** Lets queued comparisons (promise chains) run to the end. */
const settled = () => new Promise((resolve) => setImmediate(resolve));

function setup() {
  const subscribers = new McpSubscribers(logger);
  // What each person may see now at each endpoint (`alice`, `alice@triage`), as the gateway
  // would digest it: `visible`, their tools; `lists`, the servers whose resources and prompts
  // they are shown; `gone`: virtual servers deleted.
  const visible = new Map<string, string>();
  const lists = new Map<string, string>();
  const gone = new Set<string>();
  subscribers.configure((c) => {
    const name = c.virtualServer?.name;
    if (name !== undefined && gone.has(name)) return Promise.resolve(undefined);
    const key = name === undefined ? c.onBehalfOf : `${c.onBehalfOf}@${name}`;
    return Promise.resolve({ tools: visible.get(key) ?? 'nothing', lists: lists.get(key) ?? 'none' });
  });
  const told = new Map<string, ServerEvent[]>();
  const ended = new Set<string>();
  const stream = (c: StreamCaller, name: string, endable = false) => {
    told.set(name, []);
    let remove: () => void = () => undefined;
    const end = () => {
      ended.add(name);
      remove();
    };
    remove = subscribers.add(c, (event) => told.get(name)?.push(event), endable ? end : undefined);
    return remove;
  };
  return { subscribers, visible, lists, gone, told, ended, stream };
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

  it('counts streams per application and person, per org and in all, forgets closed ones, and hears no caller-less subscribe', async () => {
    const { subscribers, told, stream } = setup();
    const close = stream(caller('alice'), 'one');
    stream(caller('alice'), 'two');
    stream(caller('alice', 'app-2'), 'other-app');
    stream(caller('zoe', 'app-9', 'org-2'), 'other-org');
    expect(subscribers.open(caller('alice'))).toEqual({ person: 2, org: 3, total: 4 });
    expect(subscribers.open(caller('bob'))).toEqual({ person: 0, org: 3, total: 4 });
    expect(subscribers.open(caller('zoe', 'app-9', 'org-2'))).toEqual({ person: 1, org: 1, total: 4 });
    expect(subscribers.open(caller('alice', 'app-1', 'org-3'))).toEqual({ person: 0, org: 0, total: 4 });
    close();
    close();
    expect(subscribers.open(caller('alice'))).toEqual({ person: 1, org: 2, total: 3 });
    expect(subscribers.listening('org-1', 'alice')).toBe(true);
    expect(subscribers.listening('org-1', 'bob')).toBe(false);
    // The SDK's router subscribing outside a gateway request is given nothing.
    subscribers.bus.subscribe(() => told.set('stray', []));
    expect(subscribers.open(caller('nobody')).total).toBe(3);
    // Within a request, the router's subscribe joins that caller's group.
    const unsubscribe = subscribers.within(caller('bob'), () => subscribers.bus.subscribe(() => undefined));
    expect(subscribers.open(caller('bob')).person).toBe(1);
    unsubscribe();
    expect(subscribers.listening('org-1', 'bob')).toBe(false);
    await settled();
  });

  it("compares outside the request whose stream opened the group (its ids are not the later work's)", async () => {
    const subscribers = new McpSubscribers(logger);
    const comparedIn: (string | undefined)[] = [];
    subscribers.configure(() => {
      comparedIn.push(currentRequestContext()?.requestId);
      return Promise.resolve({ tools: 'same', lists: 'same' });
    });
    runWithRequestContext({ requestId: 'stream-request' }, () => subscribers.add(caller('alice'), () => undefined));
    await settled();
    subscribers.check('org-1');
    await settled();
    expect(comparedIn).toEqual([undefined, undefined]);
  });

  it("tells a virtual server's streams only of changes of its own list, apart from the person's /mcp streams", async () => {
    const { subscribers, visible, told, stream } = setup();
    visible.set('alice', 'all-1').set('alice@triage', 'triage-1');
    stream(caller('alice'), 'whole');
    stream(at(caller('alice'), 'triage'), 'triage');
    await settled();
    // A change outside the selection: the whole list moved, the virtual server's did not.
    visible.set('alice', 'all-2');
    subscribers.check('org-1', 'alice');
    await settled();
    expect(told.get('whole')).toHaveLength(1);
    expect(told.get('triage')).toEqual([]);
    visible.set('alice', 'all-3').set('alice@triage', 'triage-2');
    subscribers.check('org-1');
    await settled();
    expect(told.get('whole')).toHaveLength(2);
    expect(told.get('triage')).toEqual([{ kind: 'tools_list_changed' }]);
    // One person's streams at either endpoint count against the same limit.
    expect(subscribers.open(caller('alice')).person).toBe(2);
  });

  it('compares a stream opened after its virtual server was replaced from its own baseline', async () => {
    const { subscribers, visible, told, stream } = setup();
    visible.set('alice@triage', 'before');
    stream(at(caller('alice'), 'triage', 'sel-1'), 'opened-before');
    await settled();
    // Replaced (a new selection): a stream opened now sees the new list as its starting point.
    visible.set('alice@triage', 'after');
    stream(at(caller('alice'), 'triage', 'sel-2'), 'opened-after');
    await settled();
    subscribers.check('org-1');
    await settled();
    expect(told.get('opened-before')).toEqual([{ kind: 'tools_list_changed' }]);
    expect(told.get('opened-after')).toEqual([]);
  });

  it('tells of resource and prompt list changes when the servers shown to the caller moved, apart from tools', async () => {
    const { subscribers, visible, lists, told, stream } = setup();
    lists.set('alice', 'github').set('alice@triage', 'none');
    stream(caller('alice'), 'whole');
    stream(at(caller('alice'), 'triage'), 'triage');
    stream(caller('bob'), 'bob');
    await settled();
    // A rule now hides github's resources and prompts from alice at /mcp; her tools stay.
    lists.set('alice', 'none');
    subscribers.check('org-1');
    await settled();
    const resources = { kind: 'resources_list_changed' };
    const prompts = { kind: 'prompts_list_changed' };
    expect(told.get('whole')).toEqual([resources, prompts]);
    expect(told.get('triage')).toEqual([]);
    expect(told.get('bob')).toEqual([]);
    // Both move at once (she connects linear): each list is told once.
    visible.set('alice', 'with-linear');
    lists.set('alice', 'linear');
    subscribers.check('org-1', 'alice');
    await settled();
    expect(told.get('whole')).toEqual([resources, prompts, { kind: 'tools_list_changed' }, resources, prompts]);
    expect(told.get('triage')).toEqual([]);
  });

  it("tells a person's streams of a resource or prompt list change only where their caller is shown that list", async () => {
    const { subscribers, told, stream } = setup();
    const narrow = { ...caller('alice', 'app-2'), tokenScopes: ['github:read:profile'] } as StreamCaller;
    stream(caller('alice'), 'whole');
    stream(caller('alice'), 'whole-get');
    stream(narrow, 'narrow');
    stream(at(caller('alice'), 'triage'), 'triage');
    stream(at(caller('alice'), 'all-of-github'), 'all-of-github');
    stream(caller('bob'), 'bob');
    stream(caller('alice', 'app-1', 'org-2'), 'other-org');
    await settled();
    // Shown at /mcp and where github is selected whole, not at `triage` (single tools), nor to a
    // token without `github:tools`; asked once per group, never for another person or org.
    const asked: StreamCaller[] = [];
    const sees = (c: StreamCaller) => {
      asked.push(c);
      return Promise.resolve(c.tokenScopes === undefined && c.virtualServer?.name !== 'triage');
    };
    await subscribers.listChanged('org-1', 'alice', 'resources', sees);
    await subscribers.listChanged('org-1', 'alice', 'prompts', sees);
    const resources = { kind: 'resources_list_changed' };
    const prompts = { kind: 'prompts_list_changed' };
    expect(told.get('whole')).toEqual([resources, prompts]);
    expect(told.get('whole-get')).toEqual([resources, prompts]);
    expect(told.get('all-of-github')).toEqual([resources, prompts]);
    for (const name of ['narrow', 'triage', 'bob', 'other-org']) expect(told.get(name)).toEqual([]);
    expect(asked).toHaveLength(8);
    expect(asked.every((c) => c.orgId === 'org-1' && c.onBehalfOf === 'alice')).toBe(true);
  });

  it('tells no stream whose caller could not be checked, and still tells the others', async () => {
    const { subscribers, told, stream } = setup();
    stream(caller('alice'), 'whole');
    stream(caller('alice', 'app-2'), 'other-app');
    await settled();
    await subscribers.listChanged('org-1', 'alice', 'prompts', (c) =>
      c.applicationId === 'app-2' ? Promise.reject(new Error('policy unreachable')) : Promise.resolve(true),
    );
    expect(told.get('whole')).toEqual([{ kind: 'prompts_list_changed' }]);
    expect(told.get('other-app')).toEqual([]);
  });

  it("ends a deleted virtual server's streams (telling one that cannot be ended) and forgets them", async () => {
    const { subscribers, gone, told, ended, stream } = setup();
    stream(at(caller('alice'), 'triage'), 'listen', true);
    stream(at(caller('alice'), 'triage'), 'plain');
    stream(caller('alice'), 'whole', true);
    await settled();
    gone.add('triage');
    subscribers.check('org-1');
    await settled();
    expect([...ended]).toEqual(['listen']);
    expect(told.get('plain')).toEqual([{ kind: 'tools_list_changed' }]);
    expect(told.get('whole')).toEqual([]);
    expect(subscribers.open(caller('alice')).person).toBe(1);
    // Nothing is left to compare or tell there.
    subscribers.check('org-1');
    await settled();
    expect(told.get('plain')).toHaveLength(1);
  });
});
