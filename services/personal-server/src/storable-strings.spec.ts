import { create, type DescField, ScalarType } from '@bufbuild/protobuf';
import { RPC_DESCRIPTOR, StorableStringsInterceptor } from '@context-gateway/messaging';
import { QueryRecordsRequestSchema, rpc, type RpcDescriptor } from '@context-gateway/proto';
import { describe, expect, it } from '@jest/globals';
import { INTERCEPTORS_METADATA, MODULE_METADATA } from '@nestjs/common/constants.js';
import { PATTERN_EXTRAS_METADATA } from '@nestjs/microservices/constants.js';

import { AppModule } from './app.module.js';

type Class = abstract new (...args: never[]) => unknown;

/** Every controller of the module and of what it imports, at any depth. */
function controllersOf(module: Class, seen = new Set<Class>()): Class[] {
  if (seen.has(module)) return [];
  seen.add(module);
  const imports = (Reflect.getMetadata(MODULE_METADATA.IMPORTS, module) ?? []) as Class[];
  const own = (Reflect.getMetadata(MODULE_METADATA.CONTROLLERS, module) ?? []) as Class[];
  return [...own, ...imports.flatMap((m) => controllersOf(m, seen))];
}

/** Each RPC handler's subject and the interceptors Nest runs for it (the class's, then the method's). */
function handlers(): { subject: string; interceptors: unknown[] }[] {
  return controllersOf(AppModule).flatMap((controller) => {
    const proto = controller.prototype as Record<string, unknown>;
    const onClass = (Reflect.getMetadata(INTERCEPTORS_METADATA, controller) ?? []) as unknown[];
    return Object.getOwnPropertyNames(proto).flatMap((name) => {
      const method = proto[name];
      if (typeof method !== 'function') return [];
      const extras = Reflect.getMetadata(PATTERN_EXTRAS_METADATA, method) as Record<string, unknown> | undefined;
      const descriptor = extras?.[RPC_DESCRIPTOR] as RpcDescriptor | undefined;
      if (!descriptor) return [];
      const onMethod = (Reflect.getMetadata(INTERCEPTORS_METADATA, method) ?? []) as unknown[];
      return [{ subject: descriptor.subject, interceptors: [...onClass, ...onMethod] }];
    });
  });
}

describe('personal-server: a NUL in a string is validation_failed, not internal', () => {
  const query = rpc.personalServer.shardQuery;

  it('every handler but the shard query runs StorableStringsInterceptor', () => {
    const all = handlers();
    // Guards against a walk that finds nothing: the catalog's ps.v1 handlers.
    expect(all.length).toBeGreaterThanOrEqual(15);
    const without = all.filter((h) => !h.interceptors.includes(StorableStringsInterceptor)).map((h) => h.subject);
    expect(without).toEqual([query.subject]);
  });

  it('the shard query runs no interceptor at all: its hot path stays Nest-pipeline free', () => {
    expect(handlers().find((h) => h.subject === query.subject)?.interceptors).toEqual([]);
  });

  // Why it may go without: its own contract refuses a NUL in each string field that reaches
  // SQL. Two never do, so a NUL there cannot come back `internal`: the cursor (decodeCursor
  // turns it into a number or refuses it) and `fields` (a projection over the decrypted JSON
  // keys, in memory). A new string field fails this until the contract checks it or it is
  // listed here with its reason.
  const exempt = new Set(['cursor', 'fields']);
  const stringFields = QueryRecordsRequestSchema.fields.filter(
    (f: DescField) =>
      (f.fieldKind === 'scalar' || (f.fieldKind === 'list' && f.listKind === 'scalar')) &&
      f.scalar === ScalarType.STRING,
  );

  it.each(stringFields.filter((f) => !exempt.has(f.localName)).map((f) => [f.localName, f] as const))(
    'the shard query contract refuses a NUL in %s',
    (_name, field) => {
      const nul = 'a\u0000b';
      const request = create(QueryRecordsRequestSchema, {
        orgId: crypto.randomUUID(),
        applicationId: crypto.randomUUID(),
        connectionId: crypto.randomUUID(),
        limit: 10,
        [field.localName]: field.fieldKind === 'list' ? [nul] : nul,
      });
      const problems = query.validate?.(request) ?? [];
      expect(problems.map((p) => p.path)).toContainEqual(expect.stringMatching(new RegExp(`^${field.localName}`)));
    },
  );
});
