import { Body, Controller, Param } from '@nestjs/common';
import { z } from 'zod';

import { Caller } from '../auth/auth.decorators.js';
import type { ApplicationCaller } from '../auth/auth.types.js';
import { Route } from '../http/route.decorator.js';
import { connectionParams } from '../records/records.schemas.js';
import { ConnectFlowService } from './connect.service.js';
import { connectionSchema } from './connection.schema.js';

const createSessionBody = z
  .object({
    integration: z.string().min(1).max(64).describe('Integration key from the catalog, e.g. `github`.'),
    scopes: z
      .array(z.string().min(1).max(128))
      .min(1)
      .max(50)
      .describe('Our scopes, e.g. `github:read:repos`; each must be allowed for the application.'),
    callbackUrl: z.string().url().max(2048).describe("Exactly one of the application's registered callback URLs."),
    state: z.string().max(512).optional().describe('Opaque; returned to the callback as `state`.'),
  })
  .strict();

const connectSession = z.object({
  id: z.string().describe("The session's id (for your logs; the connect URL carries a separate secret)."),
  connectUrl: z.string().describe("Redirect the user's browser here. Single use."),
  expiresAt: z.string().describe('ISO 8601; ten minutes after creation.'),
});

/** The app backend's side of the connect flow (API key). */
@Controller('v1')
export class ConnectSessionsController {
  constructor(private readonly flow: ConnectFlowService) {}

  @Route({
    method: 'POST',
    path: 'connect/sessions',
    summary: 'Start connecting a user to an integration',
    description:
      "Step 1 of the connect flow. Redirect the user to `connectUrl`; they consent, sign in with a passkey and authorize at the source, and come back to your exact `callbackUrl` with `connectionId` and your `state` (or `error`: `access_denied`, `source_error`). With an access token acting for a person, the link is that person's alone: anyone else who opens it is refused (`connect_session_other_person`) and it stays usable.",
    tags: ['connect'],
    auth: 'api_key',
    personTokens: true,
    body: createSessionBody,
    success: { status: 201, schema: connectSession, description: 'The session; single use, expires in ten minutes.' },
    errors: ['callback_url_not_registered', 'integration_not_allowed', 'scope_not_allowed'],
  })
  create(@Caller() caller: ApplicationCaller, @Body() body: z.infer<typeof createSessionBody>) {
    return this.flow.createSession(caller, body);
  }

  @Route({
    method: 'GET',
    path: 'connections/:connectionId',
    summary: 'A connection your application holds a grant on',
    description:
      'Any other connection id, including one that exists for another application, is 404 `connection_not_found`; ' +
      'an id that is not a lower-case UUID is 422 `validation_failed`, as on every route.',
    tags: ['connect'],
    auth: 'api_key',
    params: connectionParams,
    success: { status: 200, schema: connectionSchema, description: "The connection and your grant's scopes." },
    errors: ['connection_not_found', 'validation_failed'],
  })
  get(@Caller() caller: ApplicationCaller, @Param() params: z.infer<typeof connectionParams>) {
    return this.flow.connection(caller, params.connectionId);
  }
}
