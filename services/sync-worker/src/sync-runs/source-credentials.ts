import type { AccessTokenSource } from '@context-gateway/connectors';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { type GetAccessTokenResponse, rpc } from '@context-gateway/proto';
import { Injectable } from '@nestjs/common';

/** What the broker says about a connection when it hands out a token. */
export interface ConnectionCredential {
  accessToken: string;
  integration: string;
  apiBaseUrl: string;
  userId: string;
  /** The broker's version of the credential behind accessToken; sent back when the source refuses it. */
  credentialVersion: number;
}

/**
 * Source tokens come from the connection-broker (`broker.v1.get_access_token`), which holds
 * them encrypted and refreshes single-flight across the fleet. Inside this process a 401
 * seen by several requests of one job also refreshes once: the first asks, the others
 * wait for its answer.
 */
@Injectable()
export class SourceCredentials {
  constructor(private readonly rpcClient: RpcClient) {}

  /**
   * The connection's token. With `refused`, the credential the source just refused: the broker
   * refreshes only if that version is still the stored one, else hands out the newer token
   * another replica already got, so one refusal never costs two refreshes.
   */
  async get(connectionId: string, refused?: ConnectionCredential): Promise<ConnectionCredential> {
    const res: GetAccessTokenResponse = await this.rpcClient.request(rpc.broker.getAccessToken, {
      connectionId,
      forceRefresh: refused !== undefined,
      refusedCredentialVersion: refused?.credentialVersion ?? 0,
    });
    if (!res.userId) throw new AppError('internal', 'The broker did not say whose connection this is');
    return {
      accessToken: res.accessToken,
      integration: res.integration,
      apiBaseUrl: res.apiBaseUrl,
      userId: res.userId,
      credentialVersion: res.credentialVersion,
    };
  }

  /** A token source for one job, starting from the credential it already fetched. */
  tokenSource(connectionId: string, first: ConnectionCredential): AccessTokenSource {
    let credential = first;
    let inFlight: Promise<string> | undefined;
    return {
      current: () => Promise.resolve(credential.accessToken),
      refresh: async (rejected: string) => {
        if (rejected !== credential.accessToken) return credential.accessToken; // someone refreshed meanwhile
        inFlight ??= this.get(connectionId, credential)
          .then((c) => (credential = c).accessToken)
          .finally(() => (inFlight = undefined));
        return inFlight;
      },
    };
  }
}
