import type { MessageInitShape } from '@bufbuild/protobuf';
import { RpcHandler } from '@context-gateway/messaging';
import {
  type ConfigureOrganizationSsoRequest,
  type DeleteOrganizationSsoRequest,
  type FinishSsoSignInRequest,
  type GetOrganizationSsoRequest,
  type OrganizationSsoSchema,
  rpc,
  type StartSsoSignInRequest,
} from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { ts } from '../time.js';
import type { SsoConfigRow } from './sso.repository.js';
import { SsoConfigService } from './sso-config.service.js';
import { SsoSignInService } from './sso-signin.service.js';

const toSsoMessage = (row: SsoConfigRow): MessageInitShape<typeof OrganizationSsoSchema> => ({
  orgId: row.orgId,
  issuer: row.issuer,
  clientId: row.clientId,
  hasClientSecret: row.secretCiphertext.length > 0,
  emailDomains: row.emailDomains,
  requiredClaims: row.requiredClaims as Record<string, string>,
  ssoRequired: row.ssoRequired,
  updatedAt: ts(row.updatedAt),
});

/** Organizations' SSO: the admin verbs, and the sign-in the gateway's pages drive. */
@Controller()
export class SsoHandler {
  constructor(
    private readonly configs: SsoConfigService,
    private readonly signIn: SsoSignInService,
  ) {}

  @RpcHandler(rpc.identity.configureOrganizationSso)
  async configure(@Payload() req: ConfigureOrganizationSsoRequest) {
    return { sso: toSsoMessage(await this.configs.configure(req)) };
  }

  @RpcHandler(rpc.identity.getOrganizationSso)
  async get(@Payload() req: GetOrganizationSsoRequest) {
    return { sso: toSsoMessage(await this.configs.get(req.orgId)) };
  }

  @RpcHandler(rpc.identity.deleteOrganizationSso)
  async delete(@Payload() req: DeleteOrganizationSsoRequest) {
    await this.configs.delete(req.orgId);
    return {};
  }

  @RpcHandler(rpc.identity.startSsoSignIn)
  async start(@Payload() req: StartSsoSignInRequest) {
    const started = await this.signIn.start(req);
    return {
      authorizationUrl: started.authorizationUrl,
      browserToken: started.browserToken,
      expiresAt: ts(started.expiresAt),
    };
  }

  @RpcHandler(rpc.identity.finishSsoSignIn)
  async finish(@Payload() req: FinishSsoSignInRequest) {
    const done = await this.signIn.finish(req);
    return {
      userId: done.userId,
      sessionToken: done.sessionToken,
      sessionExpiresAt: ts(done.sessionExpiresAt),
      newUser: done.newUser,
      orgId: done.orgId,
      returnTo: done.returnTo,
    };
  }
}
