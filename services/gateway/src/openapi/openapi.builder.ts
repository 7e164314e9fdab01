import { type ErrorCode, ErrorCodes } from '@context-gateway/errors';
import { z } from 'zod';

import type { RouteDefinition } from '../http/route.decorator.js';

/** Errors any route may answer with; each route lists its own on top. */
const COMMON_ERRORS: ErrorCode[] = [
  'malformed_request',
  'payload_too_large',
  'unsupported_media_type',
  'internal',
  'service_unavailable',
];

const problemSchema = {
  type: 'object',
  description: 'RFC 9457 problem details with a stable `code`.',
  required: ['type', 'title', 'status', 'detail', 'instance', 'code', 'requestId'],
  properties: {
    type: { type: 'string', format: 'uri' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    instance: { type: 'string' },
    code: { type: 'string', enum: Object.keys(ErrorCodes) },
    requestId: { type: 'string' },
    errors: {
      type: 'array',
      items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } },
    },
    connectUrl: {
      type: 'string',
      format: 'uri',
      description: '`connection_required` only: send the person here to connect the integration.',
    },
  },
};

const SECURITY: Record<RouteDefinition['auth'], Record<string, string[]>[]> = {
  none: [],
  api_key: [{ apiKey: [] }],
  operator: [{ operatorToken: [] }],
  user_session: [{ userSession: [] }],
  auditor: [{ auditorToken: [] }],
};

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  return rest;
}

/** `:id` (Nest) → `{id}` (OpenAPI). */
const openApiPath = (prefix: string, path: string) =>
  `/${[prefix, path].filter(Boolean).join('/')}`.replace(/\/+/g, '/').replace(/:([A-Za-z0-9_]+)/g, '{$1}');

function parameters(definition: RouteDefinition) {
  const list: Record<string, unknown>[] = [];
  for (const [where, schema] of [
    ['path', definition.params],
    ['query', definition.query],
  ] as const) {
    if (!schema) continue;
    for (const [name, field] of Object.entries(schema.shape)) {
      list.push({
        name,
        in: where,
        required: where === 'path' || !(field as z.ZodType).safeParse(undefined).success,
        schema: jsonSchema(field as z.ZodType, 'input'),
      });
    }
  }
  return list;
}

export interface DiscoveredRoute {
  prefix: string;
  definition: RouteDefinition;
}

/**
 * The OpenAPI 3.1 document, built from the same zod schemas that validate requests, so
 * the published contract and the enforced one cannot drift apart.
 */
export function buildOpenApi(routes: DiscoveredRoute[], info: { version: string; serverUrl: string }) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const { prefix, definition: d } of routes) {
    const path = openApiPath(prefix, d.path);
    const errors = [...new Set([...d.errors, ...COMMON_ERRORS])];
    const byStatus = new Map<number, ErrorCode[]>();
    for (const code of errors)
      byStatus.set(ErrorCodes[code].status, [...(byStatus.get(ErrorCodes[code].status) ?? []), code]);
    const content = d.success.schema
      ? {
          content: {
            [d.success.contentType ?? 'application/json']: { schema: jsonSchema(d.success.schema, 'output') },
          },
        }
      : {};
    const responses: Record<string, unknown> = {
      [d.success.status]: { description: d.success.description, ...content },
      ...(d.alsoSuccess ? { [d.alsoSuccess.status]: { description: d.alsoSuccess.description, ...content } } : {}),
    };
    for (const [status, codes] of [...byStatus].sort(([a], [b]) => a - b)) {
      responses[status] = {
        description: codes.join(', '),
        content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
      };
    }
    paths[path] ??= {};
    paths[path][d.method.toLowerCase()] = {
      summary: d.summary,
      ...(d.description ? { description: d.description } : {}),
      tags: d.tags,
      security: SECURITY[d.auth],
      parameters: parameters(d),
      ...(d.body
        ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(d.body, 'input') } } } }
        : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Context Gateway API',
      version: info.version,
      description: 'The public API of Context Gateway. Errors are RFC 9457 problem details with a stable `code`.',
    },
    servers: [{ url: info.serverUrl }],
    paths,
    components: {
      schemas: { Problem: problemSchema },
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'An application API key (`cg_sk_...`).' },
        operatorToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'The operator token configured on the gateway (admin API).',
        },
        userSession: {
          type: 'apiKey',
          in: 'cookie',
          name: '__Host-cg_session',
          description: 'A signed-in user (passkey).',
        },
        auditorToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'A read-only auditor token (`cg_aud_...`), scoped to one organization.',
        },
      },
    },
  };
}
