import type { MessageInitShape } from '@bufbuild/protobuf';
import { RpcHandler } from '@context-gateway/messaging';
import {
  type ApiKeySchema,
  type AuthenticateApiKeyRequest,
  type IssueApiKeyRequest,
  type ListApiKeysRequest,
  type RevokeApiKeyRequest,
  rpc,
} from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import type { ApiKey } from '../generated/prisma/client.js';
import { ts } from '../time.js';
import { ApiKeysService } from './api-keys.service.js';

const toApiKeyMessage = (k: ApiKey): MessageInitShape<typeof ApiKeySchema> => ({
  id: k.id,
  orgId: k.orgId,
  applicationId: k.applicationId,
  prefix: k.prefix,
  createdAt: ts(k.createdAt),
  lastUsedAt: ts(k.lastUsedAt),
  revokedAt: ts(k.revokedAt),
});

@Controller()
export class ApiKeysHandler {
  constructor(private readonly keys: ApiKeysService) {}

  @RpcHandler(rpc.identity.authenticateApiKey)
  authenticate(@Payload() req: AuthenticateApiKeyRequest) {
    return this.keys.authenticate(req.apiKey);
  }

  @RpcHandler(rpc.identity.issueApiKey)
  async issue(@Payload() req: IssueApiKeyRequest) {
    const { key, secret } = await this.keys.issue(req.applicationId);
    return { apiKey: toApiKeyMessage(key), secret };
  }

  @RpcHandler(rpc.identity.revokeApiKey)
  async revoke(@Payload() req: RevokeApiKeyRequest) {
    return { apiKey: toApiKeyMessage(await this.keys.revoke(req.applicationId, req.apiKeyId)) };
  }

  @RpcHandler(rpc.identity.listApiKeys)
  async list(@Payload() req: ListApiKeysRequest) {
    return { apiKeys: (await this.keys.list(req.applicationId)).map(toApiKeyMessage) };
  }
}
