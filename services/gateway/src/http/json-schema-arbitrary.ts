import fc from 'fast-check';

/**
 * fast-check arbitraries from the JSON schemas of our OpenAPI document (docs/fuzzing.md):
 * `conforming` builds values the schema accepts (the subset zod's toJSONSchema emits),
 * `mutated` damages them the way a careless or hostile client does. Anything the generator
 * does not understand becomes "any JSON", which only widens what the fuzzer sends.
 */
export type JsonSchema = Record<string, unknown>;

/** Values no schema of ours accepts somewhere: the edge must refuse each with a 4xx. */
const hostileValues: unknown[] = [
  '',
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udc00y',
  'x'.repeat(100_000),
  '../../etc/passwd',
  '%00',
  ' 1',
  '١٢',
  -0,
  -1,
  1.5,
  1e308,
  2 ** 53 + 1,
  -(2 ** 63),
  null,
  true,
  [],
  {},
  [[[[[[[[[[]]]]]]]]]],
  { __proto__: { polluted: 1 } },
];

const hostile = fc.constantFrom(...hostileValues);
const anyJson = fc.oneof(fc.jsonValue({ maxDepth: 2 }), hostile);

function stringFor(schema: JsonSchema): fc.Arbitrary<string> {
  const minLength = typeof schema.minLength === 'number' ? schema.minLength : 0;
  const maxLength = typeof schema.maxLength === 'number' ? Math.min(schema.maxLength, minLength + 64) : minLength + 32;
  switch (schema.format) {
    case 'uuid':
      return fc.uuid({ version: 4 });
    case 'uri':
    case 'url':
      return fc.webUrl({ validSchemes: ['https'] });
    case 'date-time':
      return fc
        .date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true })
        .map((d) => d.toISOString());
    case 'email':
      return fc.emailAddress();
  }
  if (typeof schema.pattern === 'string') {
    try {
      return fc.stringMatching(new RegExp(schema.pattern)).filter((s) => s.length <= Math.max(maxLength, 256));
    } catch {
      // a pattern JS cannot compile: fall through to plain strings
    }
  }
  return fc.string({ minLength, maxLength });
}

function numberFor(schema: JsonSchema, integer: boolean): fc.Arbitrary<number> {
  const min =
    typeof schema.minimum === 'number'
      ? schema.minimum
      : typeof schema.exclusiveMinimum === 'number'
        ? schema.exclusiveMinimum + (integer ? 1 : Number.EPSILON)
        : -1_000_000;
  const max =
    typeof schema.maximum === 'number'
      ? schema.maximum
      : typeof schema.exclusiveMaximum === 'number'
        ? schema.exclusiveMaximum - (integer ? 1 : Number.EPSILON)
        : 1_000_000;
  const lo = Math.max(min, Number.MIN_SAFE_INTEGER);
  const hi = Math.min(max, Number.MAX_SAFE_INTEGER);
  return integer
    ? fc.integer({ min: Math.ceil(lo), max: Math.floor(hi) })
    : fc.double({ min: lo, max: hi, noNaN: true, noDefaultInfinity: true });
}

/** Values `schema` accepts (as far as the generator understands it). */
export function conforming(
  schema: JsonSchema | undefined,
  root: JsonSchema = schema ?? {},
  depth = 0,
): fc.Arbitrary<unknown> {
  if (!schema || depth > 6) return anyJson;
  if (typeof schema.$ref === 'string') {
    const target = schema.$ref
      .replace(/^#\//, '')
      .split('/')
      .reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], root);
    return conforming(target as JsonSchema | undefined, root, depth + 1);
  }
  if ('const' in schema) return fc.constant(schema.const);
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return fc.constantFrom(...(schema.enum as unknown[]));
  for (const key of ['anyOf', 'oneOf'] as const) {
    const options = schema[key];
    if (Array.isArray(options) && options.length > 0)
      return fc.oneof(...(options as JsonSchema[]).map((o) => conforming(o, root, depth + 1)));
  }
  if (Array.isArray(schema.allOf) && schema.allOf.length > 0)
    return conforming(schema.allOf[0] as JsonSchema, root, depth + 1);
  const type = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string | undefined];
  const arbs = type.map((t): fc.Arbitrary<unknown> => {
    switch (t) {
      case 'string':
        return stringFor(schema);
      case 'integer':
        return numberFor(schema, true);
      case 'number':
        return numberFor(schema, false);
      case 'boolean':
        return fc.boolean();
      case 'null':
        return fc.constant(null);
      case 'array': {
        const minLength = typeof schema.minItems === 'number' ? schema.minItems : 0;
        const maxLength =
          typeof schema.maxItems === 'number' ? Math.min(schema.maxItems, minLength + 4) : minLength + 4;
        const items = conforming(schema.items as JsonSchema | undefined, root, depth + 1);
        return fc.array(items, { minLength, maxLength });
      }
      case 'object': {
        const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
        const required = Array.isArray(schema.required) ? (schema.required as string[]) : [];
        const parts = Object.fromEntries(
          Object.entries(properties).map(([name, s]) => [name, conforming(s, root, depth + 1)]),
        );
        return fc.record(parts, { requiredKeys: required.filter((r) => r in parts) });
      }
      default:
        return anyJson;
    }
  });
  return arbs.length === 1 ? (arbs[0] ?? anyJson) : fc.oneof(...arbs);
}

/** A conforming value damaged once: a field dropped, added, retyped or made hostile, or the whole value replaced. */
export function mutated(value: unknown): fc.Arbitrary<unknown> {
  const leaves: (string | number)[][] = [];
  const walk = (node: unknown, path: (string | number)[]) => {
    if (path.length > 0) leaves.push(path);
    if (Array.isArray(node)) node.forEach((child, i) => walk(child, [...path, i]));
    else if (node && typeof node === 'object')
      for (const [key, child] of Object.entries(node as Record<string, unknown>)) walk(child, [...path, key]);
  };
  walk(value, []);
  const replaceAt = (path: (string | number)[], replacement: unknown, drop = false): unknown => {
    const copy = structuredClone(value) as Record<string | number, unknown>;
    let node: Record<string | number, unknown> = copy;
    for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
    const last = path[path.length - 1] as string | number;
    if (drop) delete node[last];
    else node[last] = replacement;
    return copy;
  };
  const whole = fc.oneof(hostile, fc.jsonValue({ maxDepth: 2 }));
  if (leaves.length === 0) {
    return value && typeof value === 'object'
      ? fc.oneof(
          whole,
          fc.tuple(fc.string(), anyJson).map(([k, v]) => ({ ...value, [k]: v })),
        )
      : whole;
  }
  const leaf = fc.constantFrom(...leaves);
  return fc.oneof(
    whole,
    leaf.map((path) => replaceAt(path, undefined, true)),
    fc.tuple(leaf, anyJson).map(([path, v]) => replaceAt(path, v)),
    fc
      .tuple(fc.constantFrom('unknownField', '\ud800', '', '__proto__', 'constructor'), anyJson)
      .map(([k, v]) =>
        value && typeof value === 'object' && !Array.isArray(value) ? { ...value, [k]: v } : [value, v],
      ),
  );
}
