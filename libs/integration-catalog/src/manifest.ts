import { readdirSync, readFileSync } from 'node:fs';

import { z } from 'zod';

/**
 * One integration's manifest (`integrations/<key>.json`): how to reach the source, which
 * scopes a person can grant and what each one gives — the record types a data scope lets an
 * app read, the action a capability scope allows — and the tools it offers beyond its scopes.
 * Declared once, here; the connection-broker (consent, source scopes), the record catalog
 * (scope → record types) and policy (known capabilities) all derive from it.
 */
const scopeSchema = z
  .object({
    /** The source's own scopes this scope needs (OAuth); empty where the source has none. */
    source: z.array(z.string()),
    /** What the person reads on the consent page. */
    description: z.string().min(1),
    /** A data scope (`<integration>:read:<what>`): the record types it lets an app read (at least one). */
    records: z
      .array(z.string().regex(/^[a-z]+(\.[a-z_]+)*$/))
      .min(1)
      .optional(),
  })
  .strict();

const toolSchema = z
  .object({
    description: z.string().min(1),
    /** It changes or destroys something at the source (policy rules usually want an approval). */
    destructive: z.boolean().default(false),
  })
  .strict();

export const integrationManifestSchema = z
  .object({
    $comment: z.string().optional(),
    key: z.string().regex(/^[a-z0-9][a-z0-9-]{0,40}$/),
    displayName: z.string().min(1),
    authType: z.enum(['oauth2', 'api_key', 'file_export']),
    /** A file_export source has no API; the field is optional for it only (the refine below). */
    apiBaseUrl: z.url().optional(),
    oauth: z
      .object({
        /** RFC 9207: when set, an authorization response must carry `iss` equal to it. */
        issuer: z.url().optional(),
        authorizationUrl: z.url(),
        tokenUrl: z.url(),
        revocation: z
          .object({ style: z.enum(['rfc7009', 'github']), url: z.string() })
          .strict()
          .optional(),
        pkceRequired: z.boolean(),
        scopeSeparator: z.string().default(' '),
      })
      .strict()
      .optional(),
    apiKey: z.object({ label: z.string(), pattern: z.string() }).strict().optional(),
    /** file_export: the source has no API; the person's data arrives as a file export they upload. */
    export: z
      .object({ label: z.string().min(1), format: z.string().min(1) })
      .strict()
      .optional(),
    scopes: z.record(z.string(), scopeSchema),
    /** Capabilities beyond the consentable scopes (tools an agent may call), `<integration>:<tool>`. */
    tools: z.record(z.string(), toolSchema).default({}),
  })
  .strict()
  .refine(
    (f) =>
      f.authType === 'oauth2'
        ? Boolean(f.oauth && f.apiBaseUrl && !f.export)
        : f.authType === 'api_key'
          ? Boolean(f.apiKey && f.apiBaseUrl && !f.export)
          : Boolean(f.export && !f.oauth && !f.apiKey),
    {
      message:
        'oauth2 needs `oauth` and `apiBaseUrl`, api_key needs `apiKey` and `apiBaseUrl`, file_export needs `export` (and neither `oauth` nor `apiKey`)',
    },
  )
  .superRefine((f, ctx) => {
    const own = (name: string) => name.startsWith(`${f.key}:`);
    for (const [scope, spec] of Object.entries(f.scopes)) {
      if (!own(scope))
        ctx.addIssue({ code: 'custom', path: ['scopes', scope], message: `must start with "${f.key}:"` });
      // A data scope promises record types; an action scope promises none.
      const isData = scope.startsWith(`${f.key}:read:`);
      if (isData !== (spec.records !== undefined))
        ctx.addIssue({
          code: 'custom',
          path: ['scopes', scope],
          message: isData ? 'a data scope (:read:) lists the record types it gives' : 'only data scopes list records',
        });
    }
    for (const tool of Object.keys(f.tools)) {
      if (!own(tool)) ctx.addIssue({ code: 'custom', path: ['tools', tool], message: `must start with "${f.key}:"` });
      if (f.scopes[tool]) ctx.addIssue({ code: 'custom', path: ['tools', tool], message: 'is a scope already' });
    }
  });

export type IntegrationManifest = z.infer<typeof integrationManifestSchema>;

const MANIFEST_DIR = new URL('../integrations/', import.meta.url);

/**
 * Reads and validates every `<key>.json` of `dir` (the catalog's own folder by default),
 * sorted by key. A bad file throws with its name and every problem: a service must not boot
 * on a catalog it cannot trust.
 */
export function loadIntegrationManifests(dir: URL = MANIFEST_DIR): IntegrationManifest[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.json'))
    .sort()
    .map((name) => {
      const parsed = integrationManifestSchema.safeParse(JSON.parse(readFileSync(new URL(name, dir), 'utf8')));
      if (!parsed.success)
        throw new Error(
          `integrations/${name}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
        );
      if (`${parsed.data.key}.json` !== name) throw new Error(`integrations/${name}: key must match the file name`);
      return parsed.data;
    });
}

let cached: readonly IntegrationManifest[] | undefined;

/** The built-in manifests (this package's `integrations/` folder), read once. */
export function integrationManifests(): readonly IntegrationManifest[] {
  cached ??= Object.freeze(loadIntegrationManifests());
  return cached;
}

/** For each integration, each data scope and the record types it gives. */
export function dataScopes(
  manifests: readonly IntegrationManifest[] = integrationManifests(),
): Record<string, Record<string, readonly string[]>> {
  return Object.fromEntries(
    manifests.map((m) => [
      m.key,
      Object.fromEntries(
        Object.entries(m.scopes).flatMap(([scope, spec]) => (spec.records ? [[scope, spec.records]] : [])),
      ),
    ]),
  );
}

/** Every capability the built-in integrations define: their scopes (data and action) and their tools. */
export function builtinCapabilities(manifests: readonly IntegrationManifest[] = integrationManifests()): string[] {
  return manifests.flatMap((m) => [...Object.keys(m.scopes), ...Object.keys(m.tools)]).sort();
}
