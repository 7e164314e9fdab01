import { Collection } from './collection.js';
import { isoAt, Rng, SEED_EPOCH_MS } from './prng.js';
import type { Account, AccountSpec, ChangeAction, SimContext, SimItem } from './simulator-context.js';

/** Creates an account and generates its data from its seed. */
export function createAccount(ctx: SimContext, spec: AccountSpec): Account {
  if (ctx.accounts.byLoginName(spec.login)) throw new Error(`account ${spec.login} exists`);
  const id = spec.id ?? ctx.accounts.allocateId();
  const account: Account = {
    id,
    login: spec.login,
    password: spec.password ?? 'password',
    name: spec.name ?? spec.login,
    email: spec.email ?? `${spec.login}@example.test`,
    createdAt: isoAt(SEED_EPOCH_MS - 400 * 86_400_000 + (id % 1000) * 86_400_000),
    seed: spec.seed ?? `${ctx.provider.name}:${spec.login}`,
    seedCounts: {},
    collections: new Map(),
    quirks: {},
  };
  ctx.accounts.add(account);
  seedAccount(ctx, account, account.seed, spec.counts ?? {});
  ctx.provider.onAccountCreated?.(ctx, account);
  return account;
}

/**
 * (Re)generates every collection of an account: same seed and counts → same items, ids
 * and timestamps, so a benchmark can seed 100k items and a test can know what to expect.
 */
export function seedAccount(ctx: SimContext, account: Account, seed: string, counts: Record<string, number>): void {
  account.seed = seed;
  account.seedCounts = counts;
  for (const [name, spec] of Object.entries(ctx.provider.collections)) {
    let collection = account.collections.get(name);
    if (!collection) {
      collection = new Collection<SimItem>();
      account.collections.set(name, collection);
    }
    collection.clear();
    const n = counts[name] ?? spec.defaultCount;
    const rng = new Rng(`${seed}:${name}`);
    for (let i = 0; i < n; i++) collection.put(spec.generate(ctx, account, rng, i));
    collection.nextIndex = n;
  }
}

export class ChangeError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function collectionOf(ctx: SimContext, account: Account, name: string) {
  const spec = ctx.provider.collections[name];
  const collection = account.collections.get(name);
  if (!spec || !collection) {
    throw new ChangeError(
      404,
      `unknown collection ${name}; this source has: ${Object.keys(ctx.provider.collections).join(', ')}`,
    );
  }
  return { spec, collection };
}

function applyFields(item: SimItem, fields: Record<string, unknown>, readOnly: readonly string[]): void {
  for (const [k, v] of Object.entries(fields)) {
    if (k === 'id' || readOnly.includes(k)) throw new ChangeError(400, `field ${k} cannot be set`);
    if (!(k in item)) throw new ChangeError(400, `unknown field ${k}; fields: ${Object.keys(item).join(', ')}`);
    item[k] = v;
  }
}

/** Control API: a new item, generated like seeded ones, with `fields` overriding. */
export function addItem(
  ctx: SimContext,
  account: Account,
  name: string,
  fields: Record<string, unknown>,
  /** Fields the source itself sets (an issue's repository when created through the API). */
  sourceFields: Record<string, unknown> = {},
): SimItem {
  const { spec, collection } = collectionOf(ctx, account, name);
  const index = collection.nextIndex++;
  const item = spec.generate(ctx, account, new Rng(`${account.seed}:${name}:${index}`), index);
  Object.assign(item, sourceFields);
  applyFields(item, fields, spec.readOnly ?? []);
  // Stamped last, so derived fields (closed_at from state, ...) follow the final values.
  spec.stamp(item, ctx.clock.now(), 'create', collection);
  collection.put(item);
  notify(ctx, account, name, 'created', item, Object.keys(fields));
  return item;
}

export function updateItem(
  ctx: SimContext,
  account: Account,
  name: string,
  id: string,
  fields: Record<string, unknown>,
): SimItem {
  const { spec, collection } = collectionOf(ctx, account, name);
  const current = collection.get(id);
  if (!current) throw new ChangeError(404, `no ${name} item ${id}`);
  // A changed item is a new object: renderers cache by object identity.
  const item: SimItem = { ...current };
  applyFields(item, fields, spec.readOnly ?? []);
  spec.stamp(item, ctx.clock.now(), 'update', collection);
  collection.put(item);
  notify(ctx, account, name, 'updated', item, Object.keys(fields));
  return item;
}

export function deleteItem(ctx: SimContext, account: Account, name: string, id: string): SimItem {
  const { collection } = collectionOf(ctx, account, name);
  const item = collection.delete(id);
  if (!item) throw new ChangeError(404, `no ${name} item ${id}`);
  notify(ctx, account, name, 'deleted', item, []);
  return item;
}

function notify(
  ctx: SimContext,
  account: Account,
  name: string,
  action: ChangeAction,
  item: SimItem,
  changed: string[],
): void {
  ctx.provider.onChange?.(ctx, account, name, action, item, changed);
}

/** A timestamp strictly later than `previousIso`, so an edit always moves `updated_at` forward. */
export function laterThan(previousIso: string | undefined, nowMs: number): string {
  const prev = previousIso ? Date.parse(previousIso) : 0;
  return isoAt(Math.max(nowMs, prev + 1000));
}
