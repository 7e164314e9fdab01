import { z } from 'zod';

import { RECORD_MIGRATIONS } from './record-migrations.js';
import { CATALOG_VERSION, RECORD_TYPES } from './record-types.js';
import { INTEGRATION_SCOPES } from './scopes.js';

interface JsonSchema {
  type?: string | string[];
  enum?: unknown[];
  items?: JsonSchema;
  format?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  default?: unknown;
}

function describeType(s: JsonSchema): string {
  if (s.enum) return s.enum.map((v) => `\`${String(v)}\``).join(' \\| ');
  if (s.type === 'array') return `${describeType(s.items ?? {})}[]`;
  if (s.type === 'object' && s.properties) return `{ ${Object.keys(s.properties).join(', ')} }`;
  if (s.format === 'date-time') return 'ISO-8601 time';
  if (s.format === 'uri') return 'URL';
  return String(s.type ?? 'any');
}

/** docs/record-types.md, generated from the catalog so the docs cannot drift from the validator. */
export function renderRecordTypesMarkdown(): string {
  const out: string[] = [
    '# Record types (catalog version ' + CATALOG_VERSION + ')',
    '',
    '<!-- Generated from libs/record-catalog (renderRecordTypesMarkdown); edit the catalog, not this file. -->',
    '',
    'Every record an app reads from `GET /v1/connections/{connectionId}/records` has one of these',
    'types. Types say what a thing is, not where it came from: a Spotify play and a Netflix',
    'viewing have the same shape. Each record is returned as',
    '`{ id, type, externalId, updatedAt, sourceUpdatedAt, deleted, data }` where `data` has the',
    'fields below (`deleted: true` records are tombstones: the item was deleted at the source; they carry no `data`).',
    '',
  ];
  for (const type of RECORD_TYPES) {
    const json = z.toJSONSchema(type.schema, { io: 'input' }) as JsonSchema;
    out.push(
      `## \`${type.name}\`${type.retired === undefined ? '' : ` (retired in version ${type.retired})`}`,
      '',
      type.description,
      '',
      '| field | type | required | notes |',
      '|---|---|---|---|',
    );
    for (const [name, prop] of Object.entries(json.properties ?? {})) {
      const required = json.required?.includes(name) && prop.default === undefined ? 'yes' : 'no';
      const notes = [
        prop.description,
        prop.default !== undefined ? `default \`${JSON.stringify(prop.default)}\`` : undefined,
      ]
        .filter(Boolean)
        .join('; ');
      out.push(`| \`${name}\` | ${describeType(prop)} | ${required} | ${notes} |`);
    }
    out.push('');
  }
  out.push(
    '## Scopes → record types',
    '',
    "An app can read a type only if one of the scopes the user granted it maps to that type. The mapping is declared once, in each integration's manifest (`libs/integration-catalog/integrations/<key>.json`), and a test checks that each integration's scopes promise exactly the types its connector or importer writes.",
    '',
  );
  out.push('| integration | scope | record types |', '|---|---|---|');
  for (const [integration, scopes] of Object.entries(INTEGRATION_SCOPES)) {
    for (const [scope, types] of Object.entries(scopes))
      out.push(`| ${integration} | \`${scope}\` | ${types.map((t) => `\`${t}\``).join(', ')} |`);
  }
  out.push(
    '',
    '## Migrations of stored records',
    '',
    "A type is never changed incompatibly under its name. When the catalog retires a type, a migration moves the records stored under it, and every Personal Server runs it once per connection: in the background after it starts, it decrypts each record, rewrites it, checks it against the catalog and encrypts it again under its new type — same record id, same external id, a new change version, so an app following the change feed sees it. Where the connection already holds the item under the new type (written since), that newer copy stands and the old one is dropped, as are tombstones under the old type. Then the types of the connection's grants are derived again from their scopes and the grants sealed again (a grant whose seal does not match is left as it is, refused). A run cut short is simply run again; a record that does not fit its new type is left where it was and logged.",
    '',
    '| version | migration | from | to | what changes |',
    '|---|---|---|---|---|',
  );
  for (const m of RECORD_MIGRATIONS)
    out.push(`| ${m.version} | ${m.name} | \`${m.from}\` | \`${m.to}\` | ${m.description} |`);
  out.push('');
  return out.join('\n');
}
