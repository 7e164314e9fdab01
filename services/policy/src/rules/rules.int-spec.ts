import 'reflect-metadata';

import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';

import { fromBinary } from '@bufbuild/protobuf';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import { Clock } from '@context-gateway/clock';
import { TestClock } from '@context-gateway/clock/testing';
import { createTestSchema, type TestSchema } from '@context-gateway/database/testing';
import { connectNats, ensureStreams, JetStreamPublisher } from '@context-gateway/messaging';
import { type PrivateNats, startPrivateNats } from '@context-gateway/messaging/testing';
import { createLogger } from '@context-gateway/observability';
import {
  applicationDeclarationRules,
  compilePolicies,
  grantRules,
  orgIntegrationRules,
  type PolicyRequest,
  type PolicyRule,
} from '@context-gateway/policy-engine';
import { events, GrantStatus, PolicyEffect, type RuleSpec, streams } from '@context-gateway/proto';
import { LOGGER, NATS_CONNECTION, PG_POOL, SERVICE_ENV, SERVICE_INFO } from '@context-gateway/service-kit';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Global, type INestApplicationContext, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';

import { ControlEventsApplier } from '../control-events/control-events.applier.js';
import { ControlEventsModule } from '../control-events/control-events.module.js';
import { DatabaseModule } from '../database/database.module.js';
import { McpServersService } from './mcp-servers.js';
import { MAX_ORG_TOOLS_BYTES } from './mcp-tools.js';
import { MAX_VIRTUAL_SERVERS, McpVirtualServersService } from './mcp-virtual-servers.js';
import { PolicyEventsRelay, SWEEP_AFTER_MS } from './policy-events.relay.js';
import { RulesRepository } from './rules.repository.js';
import { RulesService } from './rules.service.js';

// policy against real Postgres (its own schema, migrated) and a private nats-server with
// JetStream: the CONTROL consumer runs as in the service.
const logger = createLogger({ service: 'policy-test', level: 'silent' });
const migrationsDir = fileURLToPath(new URL('../../prisma/migrations', import.meta.url));

let db: TestSchema;
let nats: PrivateNats;
let nc: NatsConnection;
let app: INestApplicationContext;
let rules: RulesService;
let repo: RulesRepository;
let applier: ControlEventsApplier;
let publisher: JetStreamPublisher;
let relay: PolicyEventsRelay;
let mcp: McpServersService;
let virtualServers: McpVirtualServersService;
/** The outbox sweep's clock: it moves when a test says so. */
const clock = new TestClock();

const spec = (s: Partial<RuleSpec>): RuleSpec =>
  ({
    effect: PolicyEffect.ALLOW,
    integration: '',
    capability: '',
    resources: [],
    applicationId: '',
    description: '',
    approvalRequired: false,
    ...s,
  }) as RuleSpec;

function appEvent(
  orgId: string,
  applicationId: string,
  revision: bigint,
  over: { integrations?: string[]; scopes?: string[]; active?: boolean } = {},
) {
  return {
    eventId: randomUUID(),
    orgId,
    applicationId,
    integrations: over.integrations ?? ['github'],
    scopes: over.scopes ?? [],
    active: over.active ?? true,
    revision,
    occurredAt: timestampNow(),
  };
}
function grantEvent(
  orgId: string,
  applicationId: string,
  userId: string,
  grantId: string,
  revision: bigint,
  status: GrantStatus,
  scopes: string[],
) {
  return {
    eventId: randomUUID(),
    grantId,
    orgId,
    applicationId,
    userId,
    connectionId: randomUUID(),
    integration: 'github',
    scopes,
    status,
    revision,
    occurredAt: timestampNow(),
  };
}

beforeAll(async () => {
  db = await createTestSchema({ prefix: 'policy_rules', migrationsDir });
  nats = await startPrivateNats();
  nc = await connectNats({ url: nats.url, name: 'policy-test', logger, bootTimeoutMs: 5_000 });
  await ensureStreams(nc, [streams.control, streams.deadLetters], logger);
  publisher = new JetStreamPublisher(nc);
  @Global()
  @Module({
    providers: [
      { provide: PG_POOL, useValue: db.pool },
      { provide: SERVICE_INFO, useValue: { name: 'policy', version: 'test', databaseSchema: db.schema } },
      { provide: NATS_CONNECTION, useValue: nc },
      { provide: LOGGER, useValue: logger },
      { provide: SERVICE_ENV, useValue: {} },
      { provide: JetStreamPublisher, useValue: publisher },
      { provide: Clock, useValue: clock },
    ],
    exports: [PG_POOL, SERVICE_INFO, NATS_CONNECTION, LOGGER, SERVICE_ENV, JetStreamPublisher, Clock],
  })
  class RuntimeStub {}
  const moduleRef = await Test.createTestingModule({
    imports: [RuntimeStub, DatabaseModule, ControlEventsModule],
  }).compile();
  // A plain application context (no HTTP): init() runs the CONTROL consumer as the service does.
  app = await moduleRef.init();
  rules = app.get(RulesService);
  repo = app.get(RulesRepository);
  applier = app.get(ControlEventsApplier);
  relay = app.get(PolicyEventsRelay);
  mcp = app.get(McpServersService);
  virtualServers = app.get(McpVirtualServersService);
}, 30_000);

afterAll(async () => {
  await app?.close();
  await nc?.close().catch(() => undefined);
  await nats?.stop();
  await db?.drop();
});

describe('policy rules service', () => {
  // First: the later tests feed the applier made-up sequence numbers, which move the cursor past the real stream.
  it("follows the CONTROL stream: once the cursor passes a grant event's sequence, the grant is in the snapshot", async () => {
    const orgId = randomUUID();
    const appId = randomUUID();
    const userId = randomUUID();
    await rules.setOrgIntegrations(orgId, ['github']);
    await publisher.publish(events.applicationChanged, appEvent(orgId, appId, 1n));
    const ack = await publisher.publish(
      events.grantChanged,
      grantEvent(orgId, appId, userId, randomUUID(), 1n, GrantStatus.ACTIVE, ['github:read:repos']),
    );
    const deadline = Date.now() + 10_000;
    while ((await repo.controlSeq()) < BigInt(ack.seq) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    const s = await rules.snapshot(orgId);
    expect(s.controlSeq).toBeGreaterThanOrEqual(BigInt(ack.seq));
    const decision = compilePolicies(s.rules, { knownCapabilities: s.knownCapabilities }).decide({
      orgId,
      applicationId: appId,
      userId,
      capability: 'github:read:repos',
    });
    expect(decision.allowed).toBe(true);
  });

  it('stores rules whose compiled snapshot decides exactly like the engine on the same rules', async () => {
    const orgId = randomUUID();
    const appId = randomUUID();
    const userId = randomUUID();
    const grantId = randomUUID();
    await applier.applicationChanged(
      appEvent(orgId, appId, 1n, { integrations: ['github'], scopes: ['spotify:read:playlists'] }) as never,
      1,
    );
    await applier.grantChanged(
      grantEvent(orgId, appId, userId, grantId, 1n, GrantStatus.ACTIVE, [
        'github:create_issue',
        'github:read:repos',
        'spotify:read:playlists',
      ]) as never,
      2,
    );
    await rules.setOrgIntegrations(orgId, ['github', 'spotify']);
    const orgDeny = await rules.putOrgRule(
      orgId,
      spec({ effect: PolicyEffect.DENY, capability: 'github:create_issue', resources: ['repo:acme/secret*'] }),
    );
    const appDeny = await rules.putApplicationRule(
      orgId,
      appId,
      spec({ effect: PolicyEffect.DENY, capability: 'github:read:repos', resources: ['repo:acme/private'] }),
    );
    const userDeny = await rules.putUserRule(
      userId,
      spec({ effect: PolicyEffect.DENY, capability: 'github:delete_repository' }),
    );

    // the oracle: the same rules built directly with the engine's helpers
    const expected: PolicyRule[] = [
      ...orgIntegrationRules(orgId, ['github', 'spotify']),
      ...applicationDeclarationRules({
        applicationId: appId,
        integrations: ['github'],
        capabilities: ['spotify:read:playlists'],
      }),
      ...grantRules({
        grantId,
        userId,
        applicationId: appId,
        scopes: ['github:create_issue', 'github:read:repos', 'spotify:read:playlists'],
      }),
      {
        id: orgDeny.rule.id,
        layer: 'org',
        subject: orgId,
        effect: 'deny',
        target: { capability: 'github:create_issue' },
        resources: ['repo:acme/secret*'],
      },
      {
        id: appDeny.rule.id,
        layer: 'application',
        subject: appId,
        effect: 'deny',
        target: { capability: 'github:read:repos' },
        resources: ['repo:acme/private'],
      },
      {
        id: userDeny.rule.id,
        layer: 'user',
        subject: userId,
        effect: 'deny',
        target: { capability: 'github:delete_repository' },
      },
    ];
    const snapshot = await rules.snapshot(orgId);
    expect(new Set(snapshot.rules.map((r) => r.id))).toEqual(new Set(expected.map((r) => r.id)));
    const stored = compilePolicies(snapshot.rules, { knownCapabilities: snapshot.knownCapabilities });
    const oracle = compilePolicies(expected, { knownCapabilities: snapshot.knownCapabilities });
    const capabilities = [
      'github:create_issue',
      'github:read:repos',
      'github:delete_repository',
      'spotify:read:playlists',
      'spotify:read:recently_played',
      'nope:nothing',
    ];
    const resources = [undefined, 'repo:acme/secret-x', 'repo:acme/private', 'repo:acme/frontend'];
    let allowed = 0;
    for (const capability of capabilities)
      for (const resource of resources)
        for (const [applicationId, user] of [
          [appId, userId],
          [randomUUID(), userId],
          [appId, randomUUID()],
        ] as const) {
          const request: PolicyRequest = {
            orgId,
            applicationId,
            userId: user,
            capability,
            ...(resource ? { resource } : {}),
          };
          const decision = stored.decide(request);
          expect({ request, decision }).toEqual({ request, decision: oracle.decide(request) });
          if (decision.allowed) allowed += 1;
        }
    expect(allowed).toBeGreaterThan(0);
    // and explain (the NATS verb) says the same, naming the deny
    const explained = await rules.explain({
      orgId,
      applicationId: appId,
      userId,
      capability: 'github:create_issue',
      resource: 'repo:acme/secret-1',
    });
    expect(explained.decision).toMatchObject({
      allowed: false,
      decidedBy: 'org',
      reason: 'deny_rule',
      matched: expect.arrayContaining([{ layer: 'org', effect: 'deny', ruleIds: [orgDeny.rule.id] }]),
    });
  });

  it('keeps approval_required on org and user allow rules, and refuses it anywhere else', async () => {
    const orgId = randomUUID();
    const appId = randomUUID();
    const userId = randomUUID();
    await applier.applicationChanged(appEvent(orgId, appId, 1n, { integrations: ['github'] }) as never, 1);
    await applier.grantChanged(
      grantEvent(orgId, appId, userId, randomUUID(), 1n, GrantStatus.ACTIVE, ['github:create_issue']) as never,
      2,
    );
    await rules.setOrgIntegrations(orgId, ['github']);
    const asks = await rules.putOrgRule(orgId, spec({ capability: 'github:create_issue', approvalRequired: true }));
    expect(asks.rule.approvalRequired).toBe(true);
    const s = await rules.snapshot(orgId);
    expect(s.rules.find((r) => r.id === asks.rule.id)).toMatchObject({ approvalRequired: true });
    const decision = compilePolicies(s.rules, { knownCapabilities: s.knownCapabilities }).decide({
      orgId,
      applicationId: appId,
      userId,
      capability: 'github:create_issue',
    });
    expect(decision).toMatchObject({ allowed: true, approval: { layer: 'org', ruleIds: [asks.rule.id] } });

    for (const write of [
      () =>
        rules.putOrgRule(orgId, spec({ effect: PolicyEffect.DENY, capability: 'github:x', approvalRequired: true })),
      () => rules.putApplicationRule(orgId, appId, spec({ capability: 'github:x', approvalRequired: true })),
    ])
      await expect(write()).rejects.toMatchObject({ code: 'validation_failed' });
    // Nothing refused was stored: the org's rules are the one approval rule still.
    expect((await rules.snapshot(orgId)).rules.filter((r) => r.approvalRequired)).toHaveLength(1);
  });

  it('hands out strictly increasing revisions, one per change, even when changes race', async () => {
    const orgId = randomUUID();
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => rules.putOrgRule(orgId, spec({ capability: `github:op_${i}` }))),
    );
    const revisions = results.map((r) => r.revision).sort((a, b) => (a < b ? -1 : 1));
    expect(revisions).toEqual(Array.from({ length: 12 }, (_, i) => BigInt(i + 1)));
    expect(await rules.revision(orgId)).toBe(12n);
    await rules.deleteRule(orgId, results[0]!.rule.id);
    expect(await rules.revision(orgId)).toBe(13n);
  });

  it('publishes a revision-stamped PolicyChanged before the change call returns', async () => {
    const orgId = randomUUID();
    const { revision } = await rules.putOrgRule(orgId, spec({ integration: 'github' }));
    const jsm = await jetstreamManager(nc);
    const last = await jsm.streams.getMessage(streams.control.name, { last_by_subj: events.policyChanged.subject });
    const event = (await import('@bufbuild/protobuf')).fromBinary(events.policyChanged.message, last!.data);
    expect({ orgId: event.orgId, revision: event.revision, cause: event.cause }).toEqual({
      orgId,
      revision,
      cause: 'rule_put',
    });
  });

  it('applies grant and application events idempotently and safely out of order', async () => {
    const orgId = randomUUID();
    const appId = randomUUID();
    const userId = randomUUID();
    const grantId = randomUUID();
    const allows = async () => {
      const s = await rules.snapshot(orgId);
      return compilePolicies(s.rules, { knownCapabilities: s.knownCapabilities }).decide({
        orgId,
        applicationId: appId,
        userId,
        capability: 'github:create_issue',
      });
    };
    await rules.setOrgIntegrations(orgId, ['github']);
    await applier.applicationChanged(appEvent(orgId, appId, 1n) as never, 100);
    // revision 2 (revoked) arrives before revision 1 (active): the revocation stands
    expect(
      await applier.grantChanged(
        grantEvent(orgId, appId, userId, grantId, 2n, GrantStatus.REVOKED, ['github:create_issue']) as never,
        102,
      ),
    ).not.toBeNull();
    const before = await rules.revision(orgId);
    expect(
      await applier.grantChanged(
        grantEvent(orgId, appId, userId, grantId, 1n, GrantStatus.ACTIVE, ['github:create_issue']) as never,
        101,
      ),
    ).toBeNull();
    // a replay of the same event changes nothing either
    expect(
      await applier.grantChanged(
        grantEvent(orgId, appId, userId, grantId, 2n, GrantStatus.REVOKED, ['github:create_issue']) as never,
        102,
      ),
    ).toBeNull();
    expect(await rules.revision(orgId)).toBe(before);
    expect(await allows()).toMatchObject({ allowed: false, decidedBy: 'user', reason: 'no_allow' });
    // the cursor never moves backwards
    expect(await repo.controlSeq()).toBeGreaterThanOrEqual(102n);
    await applier.grantChanged(
      grantEvent(orgId, appId, userId, grantId, 3n, GrantStatus.ACTIVE, ['github:create_issue']) as never,
      103,
    );
    expect((await allows()).allowed).toBe(true);
    // a disabled application allows nothing, and an older "active" event cannot bring it back
    await applier.applicationChanged(appEvent(orgId, appId, 3n, { active: false }) as never, 104);
    await applier.applicationChanged(appEvent(orgId, appId, 2n, { active: true }) as never, 105);
    expect(await allows()).toMatchObject({ allowed: false, decidedBy: 'application', reason: 'no_allow' });
  });

  it("keeps tenants apart: other orgs' apps and rules, other users' rules are not found", async () => {
    const orgA = randomUUID();
    const orgB = randomUUID();
    const appB = randomUUID();
    await applier.applicationChanged(appEvent(orgB, appB, 1n) as never, 200);
    await expect(rules.putApplicationRule(orgA, appB, spec({ integration: 'github' }))).rejects.toMatchObject({
      code: 'not_found',
    });
    const ruleB = await rules.putOrgRule(orgB, spec({ integration: 'github' }));
    await expect(rules.deleteRule(orgA, ruleB.rule.id)).rejects.toMatchObject({ code: 'not_found' });
    await expect(
      rules.explain({ orgId: orgA, applicationId: appB, userId: 'u', capability: 'github:read:repos' }),
    ).rejects.toMatchObject({ code: 'not_found' });
    const mine = await rules.putUserRule(
      'user-a',
      spec({ effect: PolicyEffect.DENY, capability: 'github:create_issue' }),
    );
    await expect(rules.deleteUserRule('user-b', mine.rule.id)).rejects.toMatchObject({ code: 'not_found' });
    await expect(
      rules.putOrgRule(orgA, spec({ capability: 'github:create_issue', resources: ['repo:*/x'] })),
    ).rejects.toMatchObject({ code: 'validation_failed' });
  });
  it('a change whose PolicyChanged JetStream refuses is committed, then announced by the outbox, once', async () => {
    const orgId = randomUUID();
    const jsm = await jetstreamManager(nc);
    const { config } = await jsm.streams.info(streams.control.name);
    // JetStream refuses policy_changed for a while (no stream takes the subject); the other
    // control subjects, and policy's own consumer of them, go on as before.
    await jsm.streams.update(streams.control.name, {
      ...config,
      subjects: [events.grantChanged.subject, events.applicationChanged.subject],
    });
    let revision: bigint;
    try {
      // The caller hears the change did not go through to the gateways (it did not "return")…
      await expect(rules.putOrgRule(orgId, spec({ integration: 'github' }))).rejects.toMatchObject({
        code: 'service_unavailable',
      });
      // …but it is committed, and so is its announcement.
      revision = await rules.revision(orgId);
      expect(revision).toBe(1n);
      expect((await rules.listOrgRules(orgId, {})).length).toBe(1);
      clock.advance(SWEEP_AFTER_MS + 1);
      await expect(relay.sweep()).rejects.toMatchObject({ code: 'service_unavailable' });
    } finally {
      await jsm.streams.update(streams.control.name, config);
    }
    // Nothing about this org reached the stream meanwhile.
    expect(await announcedTo(orgId)).toEqual([]);

    // JetStream takes it again: the next sweep delivers the event the commit wrote.
    expect(await relay.sweep()).toBe(1);
    expect(await announcedTo(orgId)).toEqual([{ revision, cause: 'rule_put' }]);
    // Published ones are not sent again; a copy published twice (a relay killed between the
    // ack and marking it published) is stored once.
    expect(await relay.sweep()).toBe(0);
    const [stored] = await storedPolicyEvents(orgId);
    const again = await publisher.publish(events.policyChanged, stored!);
    expect(again.duplicate).toBe(true);
    expect(await announcedTo(orgId)).toEqual([{ revision, cause: 'rule_put' }]);
  });
});

/** Every PolicyChanged for `orgId` on the CONTROL stream, oldest first. */
async function storedPolicyEvents(orgId: string) {
  const jsm = await jetstreamManager(nc);
  const name = `t${randomUUID().slice(0, 8)}`;
  await jsm.consumers.add(streams.control.name, {
    name,
    filter_subject: events.policyChanged.subject,
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.All,
    inactive_threshold: 60_000_000_000,
  });
  const consumer = await jetstream(nc).consumers.get(streams.control.name, name);
  const { num_pending: pending } = await consumer.info();
  const out = [];
  if (pending > 0)
    for await (const m of await consumer.fetch({ max_messages: pending, expires: 2_000 })) {
      const event = fromBinary(events.policyChanged.message, m.data);
      if (event.orgId === orgId) out.push(event);
      if (m.info.pending === 0) break;
    }
  await jsm.consumers.delete(streams.control.name, name);
  return out;
}

async function announcedTo(orgId: string) {
  return (await storedPolicyEvents(orgId)).map((e) => ({ revision: e.revision, cause: e.cause }));
}

describe("an org's remote MCP servers", () => {
  const tool = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    inputSchema: { type: 'object' },
    ...extra,
  });

  it('makes each listed tool a capability, allowed to an app only where the person granted <integration>:tools', async () => {
    const orgId = randomUUID();
    const appId = randomUUID();
    const [alice, bob] = [randomUUID(), randomUUID()];
    await applier.applicationChanged(appEvent(orgId, appId, 1n, { integrations: ['github'] }) as never, 101);
    await applier.grantChanged(
      grantEvent(orgId, appId, alice, randomUUID(), 1n, GrantStatus.ACTIVE, ['github:tools']) as never,
      102,
    );
    await applier.grantChanged(
      grantEvent(orgId, appId, bob, randomUUID(), 1n, GrantStatus.ACTIVE, ['github:read:profile']) as never,
      103,
    );
    await rules.setOrgIntegrations(orgId, ['github']);
    const put = await mcp.put(orgId, 'github', 'https://mcp.example.com/mcp', { create_issue: 'repo' });
    expect(put.server).toMatchObject({ toolsJson: '[]', toolsDigest: '', resourceArguments: { create_issue: 'repo' } });

    const URL_ = 'https://mcp.example.com/mcp';
    const RETAIN = 60_000;
    const read = (tools: object[], url = URL_) => mcp.setTools(orgId, 'github', url, JSON.stringify(tools), RETAIN);
    const first = await read([tool('list_repos'), tool('create_issue')]);
    expect(first.revision).toBeGreaterThan(put.revision);
    // Listed in another order: the same list, nothing announced.
    const same = await read([tool('create_issue'), tool('list_repos')]);
    expect(same.revision).toBe(first.revision);
    expect(same.server.toolsDigest).toBe(first.server.toolsDigest);
    // A read of a URL the registration no longer has changes nothing.
    expect((await read([tool('evil')], 'https://old.example.com/mcp')).revision).toBe(first.revision);

    const decide = async (userId: string, capability: string) => {
      const snapshot = await rules.snapshot(orgId);
      return compilePolicies(snapshot.rules, { knownCapabilities: snapshot.knownCapabilities }).decide({
        orgId,
        applicationId: appId,
        userId,
        capability,
      });
    };
    expect(await decide(alice, 'github:list_repos')).toMatchObject({ allowed: true });
    expect(await decide(alice, 'github:evil')).toMatchObject({ reason: 'unknown_capability' });
    expect(await decide(bob, 'github:list_repos')).toMatchObject({
      allowed: false,
      decidedBy: 'user',
      reason: 'no_allow',
    });

    // A new tool is a capability without a deploy. One read without a tool (another person's
    // token may see fewer) does not remove it; unseen for the retention time, it drops out.
    const changed = await read([tool('list_repos'), tool('delete_repo')]);
    expect(changed.revision).toBeGreaterThan(first.revision);
    expect(await decide(alice, 'github:delete_repo')).toMatchObject({ allowed: true });
    expect(await decide(alice, 'github:create_issue')).toMatchObject({ allowed: true });
    clock.advance(RETAIN + 1);
    const later = await read([tool('list_repos'), tool('delete_repo')]);
    expect(later.revision).toBeGreaterThan(changed.revision);
    // (github:create_issue stays a catalog capability; `github:tools` no longer covers it.)
    expect(await decide(alice, 'github:create_issue')).toMatchObject({ allowed: false, decidedBy: 'user' });

    // A new URL is another server: none of the old tools carry over.
    const moved = await mcp.put(orgId, 'github', 'https://mcp2.example.com/mcp', {});
    expect(moved.server).toMatchObject({ toolsJson: '[]', toolsDigest: '', toolsReadAt: null });
    expect(await decide(alice, 'github:delete_repo')).toMatchObject({ reason: 'unknown_capability' });
    await mcp.setTools(orgId, 'github', 'https://mcp2.example.com/mcp', JSON.stringify([tool('delete_repo')]), RETAIN);

    await mcp.delete(orgId, 'github');
    expect(await decide(alice, 'github:delete_repo')).toMatchObject({ allowed: false, reason: 'unknown_capability' });
    await expect(mcp.delete(orgId, 'github')).rejects.toMatchObject({ code: 'not_found' });
  });

  it('refuses tool lists that are not one: bad names, duplicates, not an array, not JSON, too big', async () => {
    const orgId = randomUUID();
    const URL_ = 'https://mcp.example.com/mcp';
    await mcp.put(orgId, 'github', URL_, {});
    for (const bad of [
      JSON.stringify([tool('has space')]),
      JSON.stringify([tool('a:b')]),
      JSON.stringify([tool('twice'), tool('twice')]),
      JSON.stringify({ tools: [] }),
      JSON.stringify([null]),
      '[{',
    ])
      await expect(mcp.setTools(orgId, 'github', URL_, bad, 60_000)).rejects.toMatchObject({
        code: 'validation_failed',
      });
    // Bigger than one server may have, counted in bytes (multi-byte text counts what it weighs).
    const huge = [tool('big', { description: '€'.repeat(100_000) })];
    await expect(mcp.setTools(orgId, 'github', URL_, JSON.stringify(huge), 60_000)).rejects.toMatchObject({
      code: 'validation_failed',
    });
    await expect(mcp.setTools(randomUUID(), 'github', URL_, '[]', 60_000)).rejects.toMatchObject({ code: 'not_found' });
  });
});

describe("an org's named virtual servers", () => {
  const vs = (name: string, integrations: string[], tools: string[] = []) => ({
    name,
    description: `${name} tools`,
    integrations,
    tools,
  });

  it('stores a selection of registered integrations and tools in the snapshot, each change a new revision', async () => {
    const orgId = randomUUID();
    await mcp.put(orgId, 'github', 'https://mcp.example.com/mcp', {});
    await mcp.put(orgId, 'slack', 'https://slack.example.com/mcp', {});
    const created = await virtualServers.put(orgId, vs('triage', ['github', 'github'], ['slack:send_message']));
    expect(created.server).toMatchObject({ name: 'triage', integrations: ['github'], tools: ['slack:send_message'] });
    expect((await rules.snapshot(orgId)).mcpVirtualServers.map((v) => v.name)).toEqual(['triage']);
    expect((await announcedTo(orgId)).at(-1)).toEqual({ revision: created.revision, cause: 'mcp_virtual_server_put' });

    // PUT replaces the whole selection.
    const replaced = await virtualServers.put(orgId, vs('triage', [], ['github:list_repos']));
    expect(replaced.revision).toBeGreaterThan(created.revision);
    const [stored] = (await rules.snapshot(orgId)).mcpVirtualServers;
    expect(stored).toMatchObject({ integrations: [], tools: ['github:list_repos'], description: 'triage tools' });

    // Removing the MCP server leaves the selection naming it (it offers nothing until registered again).
    await mcp.delete(orgId, 'github');
    expect((await virtualServers.list(orgId))[0]?.tools).toEqual(['github:list_repos']);

    const removed = await virtualServers.delete(orgId, 'triage');
    expect(removed.revision).toBeGreaterThan(replaced.revision);
    expect((await announcedTo(orgId)).at(-1)?.cause).toBe('mcp_virtual_server_deleted');
    expect((await rules.snapshot(orgId)).mcpVirtualServers).toEqual([]);
    await expect(virtualServers.delete(orgId, 'triage')).rejects.toMatchObject({
      code: 'mcp_virtual_server_not_found',
    });
  }, 30_000);

  it("refuses integrations without a registered MCP server, and never reaches another org's", async () => {
    const [orgId, otherOrg] = [randomUUID(), randomUUID()];
    await mcp.put(orgId, 'github', 'https://mcp.example.com/mcp', {});
    await mcp.put(otherOrg, 'jira', 'https://jira.example.com/mcp', {});
    const before = await repo.revision(orgId);
    await expect(virtualServers.put(orgId, vs('x', ['github', 'jira'], ['linear:create_issue']))).rejects.toMatchObject(
      {
        code: 'mcp_server_not_registered',
        problems: [
          { path: 'integrations.1', message: "no MCP server registered for 'jira'" },
          { path: 'tools.0', message: "no MCP server registered for 'linear'" },
        ],
      },
    );
    expect(await repo.revision(orgId)).toBe(before);
    await virtualServers.put(otherOrg, vs('shared-name', ['jira']));
    expect(await virtualServers.list(orgId)).toEqual([]);
    await expect(virtualServers.delete(orgId, 'shared-name')).rejects.toMatchObject({
      code: 'mcp_virtual_server_not_found',
    });
    expect(await virtualServers.list(otherOrg)).toHaveLength(1);
  }, 30_000);

  it('caps the virtual servers of an org, by count and in the MCP bytes budget of the snapshot', async () => {
    const orgId = randomUUID();
    await mcp.put(orgId, 'github', 'https://mcp.example.com/mcp', {});
    // Five selections of 1000 long tool names (about 138 KB each) are more than the 600 KiB budget.
    const big = (n: number) =>
      vs(
        `big-${n}`,
        [],
        Array.from({ length: 1000 }, (_, i) => `github:${'t'.repeat(120)}${n}_${i}`),
      );
    for (const n of [1, 2, 3, 4]) await virtualServers.put(orgId, big(n));
    const before = await repo.revision(orgId);
    await expect(virtualServers.put(orgId, big(5))).rejects.toMatchObject({
      code: 'validation_failed',
      problems: [{ path: 'tools', message: expect.stringContaining(`${MAX_ORG_TOOLS_BYTES} bytes`) }],
    });
    expect(await repo.revision(orgId)).toBe(before);
    // Replacing one counts its new selection, not the old one too.
    await virtualServers.put(orgId, big(4));
    // The servers' tools share that budget: a tool list that would overflow it is refused.
    const tools = JSON.stringify(
      Array.from({ length: 900 }, (_, i) => ({ name: `tool_${i}`, description: 'd'.repeat(200) })),
    );
    await expect(mcp.setTools(orgId, 'github', 'https://mcp.example.com/mcp', tools, 60_000)).rejects.toMatchObject({
      code: 'validation_failed',
      problems: [{ path: 'toolsJson' }],
    });
    expect(await repo.revision(orgId)).toBe(before + 1n);

    const many = randomUUID();
    await mcp.put(many, 'github', 'https://mcp.example.com/mcp', {});
    for (let i = 0; i < MAX_VIRTUAL_SERVERS; i++) await virtualServers.put(many, vs(`vs-${i}`, ['github']));
    await expect(virtualServers.put(many, vs('one-more', ['github']))).rejects.toMatchObject({
      code: 'validation_failed',
      problems: [{ path: 'name', message: `at most ${MAX_VIRTUAL_SERVERS} virtual servers per organization` }],
    });
    await virtualServers.put(many, vs('vs-0', ['github'], ['github:list_repos']));
    expect(await virtualServers.list(many)).toHaveLength(MAX_VIRTUAL_SERVERS);
  }, 60_000);

  it('of two concurrent deletes of one virtual server, one removes it and the other finds none', async () => {
    const orgId = randomUUID();
    await mcp.put(orgId, 'github', 'https://mcp.example.com/mcp', {});
    await virtualServers.put(orgId, vs('triage', ['github']));
    const results = await Promise.allSettled([
      virtualServers.delete(orgId, 'triage'),
      virtualServers.delete(orgId, 'triage'),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected').map((r) => r.reason)).toEqual([
      expect.objectContaining({ code: 'mcp_virtual_server_not_found' }),
    ]);
  }, 30_000);
});
