import { timestampDate } from '@bufbuild/protobuf/wkt';
import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import type { Decision } from '@context-gateway/policy-engine';
import { rpc } from '@context-gateway/proto';
import { Injectable } from '@nestjs/common';

import type { ApplicationCaller } from '../auth/auth.types.js';
import { ConnectFlowService } from '../connect/connect.service.js';
import { approvalRequiredError, deniedError, PolicyDecider } from '../policy/policy-decider.js';

/** The person a credential request acts for: the token's person, or the one an application names. */
export function personOf(caller: ApplicationCaller, userId: string | undefined): string {
  if (caller.onBehalfOf !== undefined) {
    if (userId !== undefined && userId !== caller.onBehalfOf)
      throw new AppError('forbidden', 'An access token acting for a person reaches only that person', [
        { path: 'userId', message: "must be the access token's person (or omitted)" },
      ]);
    return caller.onBehalfOf;
  }
  if (userId === undefined)
    throw new AppError('validation_failed', 'Name the person whose connection to use', [
      { path: 'userId', message: 'required unless the access token acts for a person' },
    ]);
  return userId;
}

/**
 * What credential-only mode and gateway mode share: the person's connection that this
 * application holds a grant on (else `connection_required`, with a connect link when the
 * application can start one), then the three-layer check over the grant's capabilities.
 */
@Injectable()
export class CredentialsService {
  constructor(
    private readonly rpc: RpcClient,
    private readonly decider: PolicyDecider,
    private readonly connect: ConnectFlowService,
  ) {}

  /**
   * The connection and the grant's scopes, or `connection_required` — with `connectUrl` when
   * one can be made and `link` is set. Without `link` (a listing asking whether the person
   * is connected) nothing is created: a connect link is a connect session stored at the broker.
   */
  async usableGrant(
    caller: ApplicationCaller,
    userId: string,
    integration: string,
    link = true,
  ): Promise<{ connectionId: string; scopes: string[] }> {
    const found = await this.rpc.request(rpc.broker.findUserGrant, {
      orgId: caller.orgId,
      applicationId: caller.applicationId,
      userId,
      integration,
    });
    // A grant always names at least one scope; one that names none could be checked against nothing.
    if (found.connectionId !== '' && found.scopes.length > 0)
      return { connectionId: found.connectionId, scopes: found.scopes };
    // Bound to the person: whoever else opens the link is refused (connect_session_other_person).
    const connectUrl = link ? await this.connect.connectLinkFor(caller, integration, userId) : undefined;
    throw new AppError(
      'connection_required',
      `The person has no usable ${integration} connection for this application${connectUrl ? ': send them to connectUrl' : ''}`,
      [],
      connectUrl ? { extensions: { connectUrl } } : undefined,
    );
  }

  /**
   * Integration level: the credential carries every capability the person granted, so each
   * of them must be allowed by all three layers — `<integration>:tools` standing for every
   * tool of the integration's MCP server (the source token can do what any of them does, so
   * a deny on one tool refuses the credential, and so does one that asks for approval). The
   * decision to audit is the first refusal, or the first allow; `error` is set when refused
   * (`policy_denied` naming the layer, else `approval_required`).
   */
  async checkIntegration(
    caller: ApplicationCaller,
    userId: string,
    scopes: readonly string[],
  ): Promise<{ decision: Decision; error?: AppError }> {
    const view = await this.decider.mcpView(caller);
    const tools = new Map(
      view.servers.map((s) => [`${s.integration}:tools`, [...s.tools.keys()].map((t) => `${s.integration}:${t}`)]),
    );
    const capabilities = [...new Set(scopes.flatMap((scope) => [scope, ...(tools.get(scope) ?? [])]))];
    const decisions = capabilities.map((capability) =>
      view.decide({ orgId: caller.orgId, applicationId: caller.applicationId, userId, capability }),
    );
    const deniedAt = decisions.findIndex((d) => !d.allowed);
    const denied = decisions[deniedAt];
    if (denied) return { decision: denied, error: deniedError(capabilities[deniedAt] ?? '', denied) };
    // A tool that waits for the person's approval of each call is no less reachable with the
    // raw token: the credential would let the application run it unapproved at the source.
    const heldAt = decisions.findIndex((d) => d.approval !== undefined);
    const held = decisions[heldAt];
    if (held) return { decision: held, error: approvalRequiredError(capabilities[heldAt] ?? '', held) };
    const [first] = decisions;
    if (!first) throw new AppError('internal', 'The policy check answered no decision');
    return { decision: first };
  }

  /**
   * The source refused the connection's token: the broker refreshes it, or marks the
   * connection for re-auth. `credentialVersion` is the refused token's (from `sourceToken`):
   * the broker refreshes only while it is still the stored one, so a burst of refusals of one
   * token spends the refresh token once, and a refusal of a token already replaced answers the
   * newer token instead of refreshing again.
   */
  async refused(connectionId: string, credentialVersion: number): Promise<void> {
    await this.rpc.request(rpc.broker.getAccessToken, {
      connectionId,
      forceRefresh: true,
      refusedCredentialVersion: credentialVersion,
    });
  }

  /** The short-lived source token of a connection (refreshed first by the broker when close to expiry), as credential-only mode answers it. */
  async token(connectionId: string) {
    const { credentialVersion: _version, ...answer } = await this.sourceToken(connectionId);
    return answer;
  }

  /** `token`, with which stored credential it is (sent back to `refused` when the source refuses it). */
  async sourceToken(connectionId: string) {
    const token = await this.rpc.request(rpc.broker.getAccessToken, { connectionId, forceRefresh: false });
    return {
      accessToken: token.accessToken,
      tokenType: token.tokenType || 'bearer',
      expiresAt: token.expiresAt ? timestampDate(token.expiresAt).toISOString() : null,
      integration: token.integration,
      connectionId,
      // No trailing slash: `${apiBaseUrl}/user` is the source's /user.
      apiBaseUrl: token.apiBaseUrl.replace(/\/+$/, ''),
      credentialVersion: token.credentialVersion,
    };
  }
}
