import {
  allRpcDescriptors,
  consumers,
  deadLetterSubject,
  events,
  type RpcDescriptor,
  type ServiceName,
  SERVICES,
  type StreamDescriptor,
  streams,
} from '@context-gateway/proto';

/**
 * One NATS user's rights, in nats-server's terms: subjects it may publish to and subscribe
 * to (deny wins over allow), and `allow_responses` (it may answer requests it received).
 */
export interface NatsPermissions {
  publish: { allow: string[]; deny: string[] };
  subscribe: { allow: string[] };
  allow_responses: boolean;
}

/** The identity that creates streams and durable consumers; no service runs with it. */
export const NATS_BOOTSTRAP_IDENTITY = 'bootstrap';

/** Every NATS identity: the seven services and the bootstrap. */
export type NatsIdentity = ServiceName | typeof NATS_BOOTSTRAP_IDENTITY;

const JS_API = '$JS.API';

/**
 * `_INBOX.<identity>`: where an identity's replies (RPC replies, JetStream acks and pulled
 * messages) arrive. Its own prefix, so no other identity may subscribe to them.
 */
export function inboxPrefix(identity: NatsIdentity): string {
  return `_INBOX.${identity}`;
}

/** The service that answers a contract: the one whose subject prefix starts its subject. */
export function answeringService(descriptor: RpcDescriptor): ServiceName {
  const prefix = descriptor.subject.split('.')[0];
  const service = SERVICES.find((s) => s.subjectPrefix === prefix);
  if (!service) throw new Error(`no service answers ${descriptor.subject} (prefix ${prefix})`);
  return service.name;
}

/**
 * The subject a contract is used on, as a permission: a sharded one with its shard token as
 * `*` (the tokens in which shard 0's and shard 1's subjects differ).
 */
export function rpcSubjectPattern(descriptor: RpcDescriptor): string {
  if (!descriptor.shardSubject) return descriptor.subject;
  const a = descriptor.shardSubject(0).split('.');
  const b = descriptor.shardSubject(1).split('.');
  return a.map((token, i) => (token === b[i] ? token : '*')).join('.');
}

/** The streams a service publishes to, consumes or reads: the ones it checks exist at boot (STREAM.INFO). */
export function streamsUsedBy(service: ServiceName): StreamDescriptor[] {
  const touched = new Set<StreamDescriptor>();
  for (const e of Object.values(events)) if (e.publishers.includes(service)) touched.add(e.stream);
  for (const c of Object.values(consumers)) {
    if (c.service !== service) continue;
    touched.add(c.stream);
    touched.add(streams.deadLetters);
  }
  for (const s of Object.values(streams) as StreamDescriptor[]) if (s.readers?.includes(service)) touched.add(s);
  return [...touched];
}

/**
 * A service's rights, derived from the proto catalog only (so a subject added there is
 * covered without anyone remembering this file):
 * - publish: every contract it is a caller of, every event it is a publisher of, the
 *   dead-letter subject of each stream it consumes durably, and the JetStream API calls its
 *   own consumers need: info, pull, ack and (for tuning) create/update of exactly its
 *   durable name with its filter; for a stream it reads with in-memory consumers, create/
 *   info/pull/delete of consumers other than the durable ones. Never a stream create,
 *   update, delete or purge, nor a consumer delete of a durable.
 * - subscribe: every contract it answers (queue groups included; a shard subject with its
 *   shard as `*`), its own inbox prefix, and the republished sequences of a stream it reads.
 * - allow_responses: it may reply to requests it received, on whatever reply subject they name.
 */
export function natsPermissions(service: ServiceName): NatsPermissions {
  const publish = new Set<string>([`${JS_API}.INFO`]);
  const deny = new Set<string>();
  const subscribe = new Set<string>([`${inboxPrefix(service)}.>`]);

  for (const d of allRpcDescriptors()) {
    if (d.callers.includes(service)) publish.add(rpcSubjectPattern(d));
    if (answeringService(d) === service) subscribe.add(rpcSubjectPattern(d));
  }
  for (const e of Object.values(events)) if (e.publishers.includes(service)) publish.add(e.subject);
  for (const c of Object.values(consumers)) {
    if (c.service !== service) continue;
    const on = `${c.stream.name}.${c.durable}`;
    publish.add(`${JS_API}.CONSUMER.INFO.${on}`);
    publish.add(`${JS_API}.CONSUMER.CREATE.${on}.${c.filterSubject}`);
    publish.add(`${JS_API}.CONSUMER.MSG.NEXT.${on}`);
    publish.add(`$JS.ACK.${on}.>`);
    publish.add(deadLetterSubject(c.stream));
  }
  for (const s of Object.values(streams) as StreamDescriptor[]) {
    if (!s.readers?.includes(service)) continue;
    // The stream's pushed sequences (its RePublish copies), which only its readers follow.
    if (s.republish) subscribe.add(s.republish.destination);
    publish.add(`${JS_API}.STREAM.MSG.GET.${s.name}`);
    for (const verb of ['CREATE', 'INFO', 'MSG.NEXT', 'DELETE']) publish.add(`${JS_API}.CONSUMER.${verb}.${s.name}.*`);
    publish.add(`${JS_API}.CONSUMER.CREATE.${s.name}.*.>`);
    // A reader's consumers are its own; the durable ones on the same stream belong to others.
    for (const c of Object.values(consumers)) {
      if (c.stream.name !== s.name || c.service === service) continue;
      for (const verb of ['CREATE', 'DELETE', 'MSG.NEXT'])
        deny.add(`${JS_API}.CONSUMER.${verb}.${s.name}.${c.durable}`);
      deny.add(`${JS_API}.CONSUMER.CREATE.${s.name}.${c.durable}.>`);
    }
  }
  for (const s of streamsUsedBy(service)) publish.add(`${JS_API}.STREAM.INFO.${s.name}`);

  return {
    publish: { allow: [...publish].sort(), deny: [...deny].sort() },
    subscribe: { allow: [...subscribe].sort() },
    allow_responses: true,
  };
}

/** The bootstrap's rights: the JetStream API (streams and consumers), and its own inbox. */
export function bootstrapPermissions(): NatsPermissions {
  return {
    publish: { allow: [`${JS_API}.>`], deny: [] },
    subscribe: { allow: [`${inboxPrefix(NATS_BOOTSTRAP_IDENTITY)}.>`] },
    allow_responses: false,
  };
}

/** Rights by identity: what the generated nats-server configuration grants. */
export function allNatsPermissions(): Record<NatsIdentity, NatsPermissions> {
  return {
    ...(Object.fromEntries(SERVICES.map((s) => [s.name, natsPermissions(s.name)])) as Record<
      ServiceName,
      NatsPermissions
    >),
    [NATS_BOOTSTRAP_IDENTITY]: bootstrapPermissions(),
  };
}
