import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { Controller, Param } from '@nestjs/common';
import { z } from 'zod';

import { applicationSchema, toApplication } from '../admin/admin.schemas.js';
import { Caller } from '../auth/auth.decorators.js';
import type { ApplicationCaller } from '../auth/auth.types.js';
import { id } from '../http/input.js';
import { required } from '../http/required.js';
import { Route } from '../http/route.decorator.js';

const params = z.strictObject({ applicationId: id() });

/** What an application backend may read about applications: those of its own organization. */
@Controller('v1/applications')
export class ApplicationsController {
  constructor(private readonly rpcClient: RpcClient) {}

  @Route({
    method: 'GET',
    path: ':applicationId',
    summary: 'Get an application of your organization',
    description: 'An application of another organization is 404, exactly like one that does not exist.',
    tags: ['applications'],
    auth: 'api_key',
    params,
    success: { status: 200, schema: applicationSchema, description: 'The application.' },
    errors: ['unauthenticated', 'not_found', 'validation_failed'],
  })
  async get(@Caller() caller: ApplicationCaller, @Param() p: z.infer<typeof params>) {
    const { application } = await this.rpcClient.request(rpc.identity.getApplication, {
      orgId: caller.orgId,
      applicationId: p.applicationId,
    });
    return toApplication(required(application, 'application'));
  }
}
