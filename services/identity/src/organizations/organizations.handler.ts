import type { MessageInitShape } from '@bufbuild/protobuf';
import { RpcHandler } from '@context-gateway/messaging';
import {
  type CreateOrganizationRequest,
  type GetOrganizationRequest,
  type OrganizationSchema,
  rpc,
} from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import type { Organization } from '../generated/prisma/client.js';
import { ts } from '../time.js';
import { OrganizationsService } from './organizations.service.js';

const toOrganizationMessage = (o: Organization): MessageInitShape<typeof OrganizationSchema> => ({
  id: o.id,
  slug: o.slug,
  name: o.name,
  createdAt: ts(o.createdAt),
});

/** Admin verbs on organizations (the gateway's operator-only admin API calls them). */
@Controller()
export class OrganizationsHandler {
  constructor(private readonly organizations: OrganizationsService) {}

  @RpcHandler(rpc.identity.createOrganization)
  async create(@Payload() req: CreateOrganizationRequest) {
    return { organization: toOrganizationMessage(await this.organizations.create(req)) };
  }

  @RpcHandler(rpc.identity.getOrganization)
  async get(@Payload() req: GetOrganizationRequest) {
    return { organization: toOrganizationMessage(await this.organizations.get(req.orgId)) };
  }

  @RpcHandler(rpc.identity.listOrganizations)
  async list() {
    return { organizations: (await this.organizations.list()).map(toOrganizationMessage) };
  }
}
