// Prisma's schema engine as WebAssembly (@prisma/schema-engine-wasm), driven through
// the pg driver adapter. The native engine behind `prisma migrate` cannot be downloaded
// on these machines; this build ships inside the npm package and computes the same
// diffs. Development-time only (migration authoring and the drift test): services never
// load it, which is why it lives behind its own entry point and its packages are
// devDependencies.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

import { PrismaPg } from '@prisma/adapter-pg';
import { bindMigrationAwareSqlAdapterFactory } from '@prisma/driver-adapter-utils';
import * as engineModule from '@prisma/schema-engine-wasm/schema_engine_bg';
import pg from 'pg';

import { assertSchemaName } from '../schema-name.js';

type SchemaEngine = engineModule.SchemaEngine;

// lib.dom is not in this Node-only build, so name the one WebAssembly call we make.
declare const WebAssembly: {
  instantiate(
    bytes: Uint8Array,
    imports: Record<string, unknown>,
  ): Promise<{ instance: { exports: Record<string, unknown> } }>;
};

let initialized: Promise<void> | undefined;

/**
 * The package's own entry imports the .wasm file as an ES module, which Node 20 cannot
 * do without a flag; so instantiate it by hand, the way wasm-bindgen's glue expects.
 */
function initWasm(): Promise<void> {
  initialized ??= (async () => {
    const require = createRequire(import.meta.url);
    const gluePath = require.resolve('@prisma/schema-engine-wasm/schema_engine_bg');
    const bytes = await readFile(gluePath.replace(/\.js$/, '.wasm'));
    const { instance } = await WebAssembly.instantiate(bytes, {
      './schema_engine_bg.js': withUnrefTimers(engineModule),
    });
    engineModule.__wbg_set_wasm(instance.exports);
    (instance.exports.__wbindgen_start as () => void)();
  })();
  return initialized;
}

/**
 * The engine races its database work against long timers (10 s for the migration lock)
 * and never clears them, which would keep a finished script or test process alive
 * until they fire. Unref them: the database I/O still keeps the process up while it runs.
 */
function withUnrefTimers(glue: typeof engineModule): Record<string, unknown> {
  const imports: Record<string, unknown> = { ...glue };
  for (const [name, fn] of Object.entries(imports)) {
    if (!name.startsWith('__wbg_setTimeout_') || typeof fn !== 'function') continue;
    imports[name] = (...args: unknown[]) => {
      const timer = (fn as (...a: unknown[]) => { unref?: () => void })(...args);
      timer?.unref?.();
      return timer;
    };
  }
  return imports;
}

// pg's OID for the internal one-byte `"char"` type, which Postgres' catalogs use
// (relkind, contype, ...) and which adapter-pg 7.10 refuses to map. The engine reads
// those columns as text, so report them as text (OID 25).
const PG_CHAR_OID = 18;
const PG_TEXT_OID = 25;

function relabelCharColumns<T>(result: T): T {
  const fields = (result as { fields?: { dataTypeID: number }[] } | undefined)?.fields;
  for (const field of fields ?? []) if (field.dataTypeID === PG_CHAR_OID) field.dataTypeID = PG_TEXT_OID;
  return result;
}

/** pg's node-style query callback, the last argument when the caller passed one. */
type QueryCallback = (error: unknown, result: unknown) => void;

function isQueryCallback(value: unknown): value is QueryCallback {
  return typeof value === 'function';
}

/**
 * A pool whose connections report `"char"` columns as text; only the engine uses it.
 * The search_path matters too: Postgres qualifies type names outside it when it prints
 * column defaults (`'active'::s.status`), which the engine would read as a difference.
 */
function catalogReadablePool(url: string, schema: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: 2,
    application_name: 'schema-diff',
    options: `-c search_path=${assertSchemaName(schema)}`,
  });
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as { query: unknown }).query = (...args: unknown[]) => {
      const callback = args.at(-1);
      if (isQueryCallback(callback)) {
        args[args.length - 1] = (error: unknown, result: unknown) =>
          callback(error, error ? result : relabelCharColumns(result));
        return query(...args);
      }
      return (query(...args) as Promise<unknown>).then(relabelCharColumns);
    };
  });
  pool.on('error', () => undefined);
  return pool;
}

/**
 * Runs `use` with a schema engine connected to `schema` in the database at `url`, and
 * releases both afterwards. `datamodel` is the schema.prisma text the engine starts with.
 */
export async function withSchemaEngine<T>(
  url: string,
  schema: string,
  datamodel: { path: string; content: string },
  use: (engine: SchemaEngine) => Promise<T>,
): Promise<T> {
  await initWasm();
  const pool = catalogReadablePool(url, schema);
  try {
    const adapter = bindMigrationAwareSqlAdapterFactory(new PrismaPg(pool, { schema }));
    const engine = await engineModule.SchemaEngine.new(
      { datamodels: [[datamodel.path, datamodel.content]] },
      () => undefined,
      adapter,
    );
    try {
      return await use(engine);
    } finally {
      engine.free();
    }
  } finally {
    await pool.end();
  }
}
