import { RpcClient } from '@context-gateway/messaging';
import { ApplicationStatus, rpc } from '@context-gateway/proto';
import { Injectable } from '@nestjs/common';

import { required } from '../http/required.js';
import { toApiKey, toApplication, toOrganization, toRegistrationToken } from './admin.schemas.js';

/** The operator's admin verbs: identity does the work, this maps its replies to the public JSON. */
@Injectable()
export class AdminService {
  constructor(private readonly rpcClient: RpcClient) {}

  async createOrganization(input: { name: string; slug?: string }) {
    const { organization } = await this.rpcClient.request(rpc.identity.createOrganization, {
      name: input.name,
      slug: input.slug ?? '',
    });
    return toOrganization(required(organization, 'organization'));
  }

  async listOrganizations() {
    const { organizations } = await this.rpcClient.request(rpc.identity.listOrganizations, {});
    return { organizations: organizations.map(toOrganization) };
  }

  async getOrganization(orgId: string) {
    const { organization } = await this.rpcClient.request(rpc.identity.getOrganization, { orgId });
    return toOrganization(required(organization, 'organization'));
  }

  async createApplication(
    orgId: string,
    input: {
      name: string;
      callbackUrls: string[];
      integrations: string[];
      scopes: string[];
      clientMetadataUrl?: string;
    },
  ) {
    const { application } = await this.rpcClient.request(rpc.identity.createApplication, { orgId, ...input });
    return toApplication(required(application, 'application'));
  }

  async updateApplication(
    orgId: string,
    applicationId: string,
    change: {
      name?: string;
      callbackUrls?: string[];
      integrations?: string[];
      scopes?: string[];
      status?: 'active' | 'disabled';
    },
  ) {
    const list = (values: string[] | undefined) => (values === undefined ? undefined : { values });
    const { application } = await this.rpcClient.request(rpc.identity.updateApplication, {
      orgId,
      applicationId,
      name: change.name,
      callbackUrls: list(change.callbackUrls),
      integrations: list(change.integrations),
      scopes: list(change.scopes),
      status:
        change.status === undefined
          ? ApplicationStatus.UNSPECIFIED
          : change.status === 'active'
            ? ApplicationStatus.ACTIVE
            : ApplicationStatus.DISABLED,
    });
    return toApplication(required(application, 'application'));
  }

  async configureOAuthClient(
    orgId: string,
    applicationId: string,
    settings: {
      tokenEndpointAuthMethod: 'client_secret_basic' | 'private_key_jwt' | 'none';
      jwks?: { keys: Record<string, unknown>[] };
      jwksUri?: string;
      rotateSecret: boolean;
      idpClientId?: string;
    },
  ) {
    const reply = await this.rpcClient.request(rpc.identity.configureOAuthClient, {
      orgId,
      applicationId,
      tokenEndpointAuthMethod: settings.tokenEndpointAuthMethod,
      jwksJson: settings.jwks ? JSON.stringify(settings.jwks) : '',
      jwksUri: settings.jwksUri ?? '',
      rotateSecret: settings.rotateSecret,
      idpClientId: settings.idpClientId ?? '',
    });
    return {
      applicationId: reply.applicationId,
      clientId: reply.clientId,
      tokenEndpointAuthMethod: reply.tokenEndpointAuthMethod as 'client_secret_basic' | 'private_key_jwt' | 'none',
      hasClientSecret: reply.hasClientSecret,
      ...(reply.clientSecret ? { clientSecret: reply.clientSecret } : {}),
      ...(reply.idpClientId ? { idpClientId: reply.idpClientId } : {}),
    };
  }

  async listApplications(orgId: string) {
    const { applications } = await this.rpcClient.request(rpc.identity.listApplications, { orgId });
    return { applications: applications.map(toApplication) };
  }

  async getApplication(orgId: string, applicationId: string) {
    const { application } = await this.rpcClient.request(rpc.identity.getApplication, { orgId, applicationId });
    return toApplication(required(application, 'application'));
  }

  async issueApiKey(applicationId: string) {
    const { apiKey, secret } = await this.rpcClient.request(rpc.identity.issueApiKey, { applicationId });
    return { ...toApiKey(required(apiKey, 'apiKey')), secret };
  }

  async listApiKeys(applicationId: string) {
    const { apiKeys } = await this.rpcClient.request(rpc.identity.listApiKeys, { applicationId });
    return { apiKeys: apiKeys.map(toApiKey) };
  }

  async revokeApiKey(applicationId: string, apiKeyId: string) {
    const { apiKey } = await this.rpcClient.request(rpc.identity.revokeApiKey, { applicationId, apiKeyId });
    return toApiKey(required(apiKey, 'apiKey'));
  }

  async issueRegistrationToken(orgId: string, input: { expiresInSeconds: number; singleUse: boolean }) {
    const { registrationToken, token } = await this.rpcClient.request(rpc.identity.issueOAuthRegistrationToken, {
      orgId,
      // The admin API has one principal, the operator (auth: 'operator').
      issuedBy: 'operator',
      ...input,
    });
    return { ...toRegistrationToken(required(registrationToken, 'registrationToken')), token };
  }

  async listRegistrationTokens(orgId: string) {
    const { registrationTokens } = await this.rpcClient.request(rpc.identity.listOAuthRegistrationTokens, { orgId });
    return { registrationTokens: registrationTokens.map(toRegistrationToken) };
  }

  async revokeRegistrationToken(orgId: string, registrationTokenId: string) {
    const { registrationToken } = await this.rpcClient.request(rpc.identity.revokeOAuthRegistrationToken, {
      orgId,
      registrationTokenId,
    });
    return toRegistrationToken(required(registrationToken, 'registrationToken'));
  }
}
