import type { MessageInitShape } from '@bufbuild/protobuf';
import { RpcHandler } from '@context-gateway/messaging';
import {
  type ApplicationSchema,
  ApplicationStatus,
  type CreateApplicationRequest,
  type GetApplicationRequest,
  type ListApplicationsRequest,
  rpc,
  type UpdateApplicationRequest,
} from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import type { Application } from '../generated/prisma/client.js';
import { ts } from '../time.js';
import { ApplicationsService } from './applications.service.js';

const toApplicationMessage = (a: Application): MessageInitShape<typeof ApplicationSchema> => ({
  id: a.id,
  orgId: a.orgId,
  name: a.name,
  clientId: a.clientId,
  callbackUrls: a.callbackUrls,
  integrations: a.integrations,
  scopes: a.scopes,
  status: a.status === 'active' ? ApplicationStatus.ACTIVE : ApplicationStatus.DISABLED,
  createdAt: ts(a.createdAt),
  updatedAt: ts(a.updatedAt),
  clientMetadataUrl: a.clientMetadataUrl ?? '',
});

@Controller()
export class ApplicationsHandler {
  constructor(private readonly applications: ApplicationsService) {}

  /** Used by the broker to validate connect sessions: org-scoped. */
  @RpcHandler(rpc.identity.getApplication)
  async get(@Payload() req: GetApplicationRequest) {
    return { application: toApplicationMessage(await this.applications.getInOrg(req.orgId, req.applicationId)) };
  }

  @RpcHandler(rpc.identity.createApplication)
  async create(@Payload() req: CreateApplicationRequest) {
    return { application: toApplicationMessage(await this.applications.create(req)) };
  }

  @RpcHandler(rpc.identity.updateApplication)
  async update(@Payload() req: UpdateApplicationRequest) {
    const status =
      req.status === ApplicationStatus.ACTIVE
        ? 'active'
        : req.status === ApplicationStatus.DISABLED
          ? 'disabled'
          : undefined;
    return {
      application: toApplicationMessage(
        await this.applications.update({
          orgId: req.orgId,
          applicationId: req.applicationId,
          name: req.name,
          callbackUrls: req.callbackUrls?.values,
          integrations: req.integrations?.values,
          scopes: req.scopes?.values,
          status,
        }),
      ),
    };
  }

  @RpcHandler(rpc.identity.listApplications)
  async list(@Payload() req: ListApplicationsRequest) {
    return { applications: (await this.applications.list(req.orgId)).map(toApplicationMessage) };
  }
}
