import { describe, expect, it } from '@jest/globals';
import { z } from 'zod';

import { buildOpenApi } from './openapi.builder.js';

describe('buildOpenApi', () => {
  const doc = buildOpenApi(
    [
      {
        prefix: 'v1/connections',
        definition: {
          method: 'GET',
          path: ':connectionId',
          summary: 'Get a connection',
          tags: ['connections'],
          auth: 'api_key',
          params: z.object({ connectionId: z.string().uuid() }),
          query: z.object({ fields: z.string().optional() }),
          success: { status: 200, schema: z.object({ id: z.string() }), description: 'The connection' },
          errors: ['not_found', 'unauthenticated'],
        },
      },
    ],
    { version: '1.2.3', serverUrl: 'https://gw.example' },
  );

  it('publishes each route with its parameters, security and schemas from the zod definitions', () => {
    expect(doc.paths['/v1/connections/{connectionId}']).toMatchObject({
      get: {
        security: [{ apiKey: [] }],
        parameters: [
          expect.objectContaining({
            name: 'connectionId',
            in: 'path',
            required: true,
            schema: expect.objectContaining({ format: 'uuid' }),
          }),
          expect.objectContaining({ name: 'fields', in: 'query', required: false }),
        ],
        responses: {
          '200': {
            content: {
              'application/json': { schema: { type: 'object', properties: { id: { type: 'string' } } } },
            },
          },
        },
      },
    });
    expect(doc.paths['/v1/connections/{connectionId}']).toHaveProperty(
      ['get', 'responses', '401', 'content', 'application/problem+json', 'schema'],
      { $ref: '#/components/schemas/Problem' },
    );
  });

  it('names the document and its server', () => {
    expect(doc).toMatchObject({
      openapi: '3.1.0',
      info: { version: '1.2.3' },
      servers: [{ url: 'https://gw.example' }],
    });
  });
});
