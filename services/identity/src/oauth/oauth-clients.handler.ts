import { RpcHandler } from '@context-gateway/messaging';
import { type ConfigureOAuthClientRequest, rpc } from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { OAuthClientsService } from './oauth-clients.service.js';

@Controller()
export class OAuthClientsHandler {
  constructor(private readonly clients: OAuthClientsService) {}

  @RpcHandler(rpc.identity.configureOAuthClient)
  async configure(@Payload() req: ConfigureOAuthClientRequest) {
    const { application, clientSecret } = await this.clients.configure(req);
    return {
      applicationId: application.id,
      clientId: application.clientId,
      tokenEndpointAuthMethod: application.tokenEndpointAuthMethod,
      clientSecret: clientSecret ?? '',
      hasClientSecret: application.clientSecretHash !== null,
      idpClientId: application.idpClientId ?? '',
    };
  }
}
