import { RpcHandler } from '@context-gateway/messaging';
import {
  type FinishPasskeyAuthenticationRequest,
  type FinishPasskeyRegistrationRequest,
  type GetAccountSecurityRequest,
  type ListUserPasskeysRequest,
  type RemovePasskeyRequest,
  type RenamePasskeyRequest,
  type ResolveSessionRequest,
  rpc,
  type SignOutOtherSessionsRequest,
  type SignOutRequest,
  type StartPasskeyRegistrationRequest,
} from '@context-gateway/proto';
import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

import { ts } from '../time.js';
import { AccountSecurityService } from './account-security.service.js';
import { type CeremonyFinish, type CeremonyStart, PasskeysService } from './passkeys.service.js';
import { SessionsService } from './sessions.service.js';

const started = (s: CeremonyStart) => ({
  optionsJson: s.optionsJson,
  ceremonyToken: s.ceremonyToken,
  expiresAt: ts(s.expiresAt),
});
const finished = (f: CeremonyFinish) => ({
  userId: f.userId,
  sessionToken: f.sessionToken,
  sessionExpiresAt: ts(f.sessionExpiresAt),
  newUser: f.newUser,
});

/** Passkey ceremonies and sessions; the gateway's /v1/auth routes call these. */
@Controller()
export class AccountsHandler {
  constructor(
    private readonly passkeys: PasskeysService,
    private readonly sessions: SessionsService,
    private readonly security: AccountSecurityService,
  ) {}

  @RpcHandler(rpc.identity.startPasskeyRegistration)
  async startRegistration(@Payload() req: StartPasskeyRegistrationRequest) {
    return started(
      await this.passkeys.startRegistration({ displayName: req.displayName, sessionToken: req.sessionToken }),
    );
  }

  @RpcHandler(rpc.identity.finishPasskeyRegistration)
  async finishRegistration(@Payload() req: FinishPasskeyRegistrationRequest) {
    return finished(await this.passkeys.finishRegistration(req));
  }

  @RpcHandler(rpc.identity.startPasskeyAuthentication)
  async startAuthentication() {
    return started(await this.passkeys.startAuthentication());
  }

  @RpcHandler(rpc.identity.finishPasskeyAuthentication)
  async finishAuthentication(@Payload() req: FinishPasskeyAuthenticationRequest) {
    return finished(await this.passkeys.finishAuthentication(req));
  }

  @RpcHandler(rpc.identity.resolveSession)
  async resolve(@Payload() req: ResolveSessionRequest) {
    const session = await this.sessions.resolve(req.sessionToken);
    const { user } = session;
    return {
      user: {
        id: user.id,
        displayName: user.displayName,
        createdAt: ts(user.createdAt),
        passkeyCount: user._count.passkeys,
      },
      expiresAt: ts(session.expiresAt),
      // Sessions are only ever opened by a passkey ceremony, at creation.
      authenticatedAt: ts(session.createdAt),
    };
  }

  @RpcHandler(rpc.identity.getAccountSecurity)
  async accountSecurity(@Payload() req: GetAccountSecurityRequest) {
    const { passkeys, sessions, currentId } = await this.security.overview(req.sessionToken);
    return {
      passkeys: passkeys.map((p) => ({
        id: p.id,
        createdAt: ts(p.createdAt),
        ...(p.lastUsedAt ? { lastUsedAt: ts(p.lastUsedAt) } : {}),
        deviceType: p.deviceType,
        backedUp: p.backedUp,
        name: p.name ?? '',
        credentialId: p.credentialId,
      })),
      sessions: sessions.map((s) => ({
        id: s.id,
        createdAt: ts(s.createdAt),
        expiresAt: ts(s.expiresAt),
        method: s.method,
        current: s.id === currentId,
      })),
    };
  }

  @RpcHandler(rpc.identity.listUserPasskeys)
  async listUserPasskeys(@Payload() req: ListUserPasskeysRequest) {
    const passkeys = await this.security.publicKeys(req.userId);
    return { passkeys: passkeys.map((p) => ({ credentialId: p.credentialId, publicKey: p.publicKey })) };
  }

  @RpcHandler(rpc.identity.removePasskey)
  async removePasskey(@Payload() req: RemovePasskeyRequest) {
    await this.security.removePasskey(req.sessionToken, req.passkeyId);
    return {};
  }

  @RpcHandler(rpc.identity.renamePasskey)
  async renamePasskey(@Payload() req: RenamePasskeyRequest) {
    await this.security.renamePasskey(req.sessionToken, req.passkeyId, req.name);
    return {};
  }

  @RpcHandler(rpc.identity.signOutOtherSessions)
  async signOutOthers(@Payload() req: SignOutOtherSessionsRequest) {
    return { signedOut: await this.security.signOutOthers(req.sessionToken) };
  }

  @RpcHandler(rpc.identity.signOut)
  async signOut(@Payload() req: SignOutRequest) {
    await this.sessions.signOut(req.sessionToken);
    return {};
  }
}
