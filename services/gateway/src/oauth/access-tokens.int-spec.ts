import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate, timestampNow } from '@bufbuild/protobuf/wkt';
import { JetStreamPublisher } from '@context-gateway/messaging';
import { ApplicationStatus, events, rpc, TokenRevocationKind } from '@context-gateway/proto';
import type { RunningService } from '@context-gateway/service-kit';
import { ServiceHarness } from '@context-gateway/service-kit/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';

import { AppModule } from '../app.module.js';
import { loadEnv } from '../env.js';
import { configureGateway } from '../http/configure.js';

// Access tokens beside API keys, on the gateway booted as main.ts boots it. identity is
// played by its two faces the gateway meets: a JWKS over HTTP (here a plain server with
// keys made by jose, as identity's would be) and `get_application` over NATS (a stub).

const PUBLIC_URL = 'https://gateway.example';
const ISSUER = `${PUBLIC_URL}/oauth`;
const ORG = randomUUID();
const APP = randomUUID();
const CLIENT = 'cg_app_client0000000000000';
/** An MCP client allowed by its metadata URL (CIMD): its tokens' client_id is the URL. */
const CIMD_APP = randomUUID();
const CIMD_URL = 'https://client.example/oauth/metadata.json';
let harness: ServiceHarness;
let gateway: RunningService;
let jwksServer: Server;
type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let signingKey: PrivateKey;
let strangerKey: PrivateKey;
let jwks: JWK[] = [];

async function token(
  claims: Record<string, unknown> = {},
  options: { key?: PrivateKey; kid?: string; typ?: string; exp?: string } = {},
) {
  // Claims given here win over the defaults (the setters would overwrite them, so none is used).
  return new SignJWT({
    iss: ISSUER,
    aud: PUBLIC_URL,
    sub: CLIENT,
    client_id: CLIENT,
    org_id: ORG,
    app_id: APP,
    scope: 'github:read:repos',
    ...claims,
  })
    .setProtectedHeader({ alg: 'ES256', typ: options.typ ?? 'at+jwt', kid: options.kid ?? 'k1' })
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime(options.exp ?? '5m')
    .sign(options.key ?? signingKey);
}

beforeAll(async () => {
  const pair = await generateKeyPair('ES256');
  signingKey = pair.privateKey;
  strangerKey = (await generateKeyPair('ES256')).privateKey;
  jwks = [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }];
  jwksServer = createServer((req, res) => {
    res.writeHead(req.url === '/oauth/jwks' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: jwks }));
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  harness = await ServiceHarness.start({
    schemaPrefix: 'gateway_tokens',
    migrationsDir: fileURLToPath(new URL('../../prisma/migrations', import.meta.url)),
  });
  // identity's get_application: the registered application, or the metadata-URL one.
  const { getApplication } = rpc.identity;
  harness.nc.subscribe(getApplication.subject, {
    callback: (_error, msg) => {
      const { applicationId } = fromBinary(getApplication.request, msg.data);
      const application = {
        orgId: ORG,
        status: ApplicationStatus.ACTIVE,
        createdAt: timestampNow(),
        updatedAt: timestampNow(),
        ...(applicationId === CIMD_APP
          ? { id: CIMD_APP, name: 'MCP client', clientId: 'cg_app_cimd00000000000000', clientMetadataUrl: CIMD_URL }
          : { id: APP, name: 'Acme', clientId: CLIENT }),
      };
      msg.respond(toBinary(getApplication.response, create(getApplication.response, { application })));
    },
  });
  gateway = await harness.run({
    name: 'gateway',
    module: AppModule,
    loadEnv,
    env: {
      GATEWAY_PUBLIC_URL: PUBLIC_URL,
      IDENTITY_HTTP_URL: `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}`,
    },
    configure: configureGateway,
  });
}, 60_000);

afterAll(async () => {
  await harness?.stop();
  jwksServer?.closeAllConnections();
  await new Promise((resolve) => jwksServer?.close(resolve));
});

const call = (bearer: string) =>
  fetch(new URL(`/v1/applications/${APP}`, gateway.url), { headers: { authorization: `Bearer ${bearer}` } });

describe('access tokens on API-key routes', () => {
  it("accept an application's own token (client credentials) like its API key", async () => {
    const res = await call(await token());
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: APP, clientId: CLIENT });
  });

  it.each([
    ['another audience', async () => token({ aud: 'https://other.example' })],
    ['another issuer', async () => token({ iss: 'https://evil.example/oauth' })],
    ['an expired token', async () => token({}, { exp: '-1m' })],
    ['a plain JWT (not at+jwt, e.g. an ID token)', async () => token({}, { typ: 'JWT' })],
    ['a key the authorization server never published', async () => token({}, { key: strangerKey })],
    ['an unknown key id', async () => token({}, { kid: 'k-unknown' })],
    ['a token without org or application', async () => token({ org_id: undefined, app_id: undefined })],
    [
      'a token naming another client than its application',
      async () => token({ client_id: 'cg_app_other', sub: 'cg_app_other' }),
    ],
  ])('refuse %s with 401 and the Bearer challenge', async (_name, make) => {
    const res = await call(await make());
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('resource_metadata=');
    expect(await res.json()).toMatchObject({ code: 'unauthenticated' });
  });

  it('refuse, for now, a token acting for a person, saying so', async () => {
    const res = await call(await token({ sub: randomUUID() }));
    expect(res.status).toBe(401);
    expect(((await res.json()) as { detail: string }).detail).toContain('acting for a person');
  });

  it('refuse a token accepted before (its verification kept) once it has expired', async () => {
    // Expires in 1 s; the verifier allows 5 s of clock skew.
    const shortLived = await token({}, { exp: '1s' });
    expect((await call(shortLived)).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 7_000));
    const res = await call(shortLived);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ code: 'unauthenticated' });
  }, 20_000);

  it('refuse a token that is not a JWS at all, as before', async () => {
    expect((await call('not-a-token')).status).toBe(401);
  });
});

describe("a metadata-URL client's person tokens", () => {
  // POST /v1/credentials takes person tokens; an empty body fails validation only after the
  // token was accepted (422), where a refused token is 401.
  const credentials = async (claims: Record<string, unknown>) =>
    fetch(new URL('/v1/credentials', gateway.url), {
      method: 'POST',
      headers: {
        authorization: `Bearer ${await token({ sub: randomUUID(), app_id: CIMD_APP, grant_id: randomUUID(), ...claims })}`,
        'content-type': 'application/json',
      },
      body: '{}',
    });

  it("are accepted when their client_id is their application's metadata URL", async () => {
    const res = await credentials({ client_id: CIMD_URL });
    expect(res.status).toBe(422);
    expect(await res.json()).toMatchObject({ code: 'validation_failed' });
  });

  it.each([
    ['another metadata URL', 'https://evil.example/oauth/metadata.json'],
    ["the application's registered client id", 'cg_app_cimd00000000000000'],
    ['a registered client of the same organization', CLIENT],
  ])('are refused when their client_id is %s', async (_what, clientId) => {
    const res = await credentials({ client_id: clientId });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ code: 'unauthenticated' });
  });
});

describe('revoked tokens (control.v1.tokens_revoked)', () => {
  const revoke = (kind: TokenRevocationKind, subjectId: string, at = new Date()) =>
    new JetStreamPublisher(harness.nc).publish(events.tokensRevoked, {
      eventId: randomUUID(),
      orgId: ORG,
      kind,
      subjectId,
      revokedAt: timestampFromDate(at),
    });

  it('a token whose grant was revoked fails on the very next request; other grants are untouched', async () => {
    const grantId = `grant-${randomUUID()}`;
    const revoked = await token({ grant_id: grantId });
    const other = await token({ grant_id: `grant-${randomUUID()}` });
    expect((await call(revoked)).status).toBe(200);
    await revoke(TokenRevocationKind.GRANT, grantId);
    const res = await call(revoked);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ code: 'unauthenticated', detail: 'The access token has been revoked' });
    expect((await call(other)).status).toBe(200);
  });

  it("revoking an application's tokens ends every token issued until then, not the ones issued after", async () => {
    const before = await token();
    await revoke(TokenRevocationKind.APPLICATION, APP, new Date(Date.now() - 1_000));
    expect((await call(await token())).status).toBe(200);
    await revoke(TokenRevocationKind.APPLICATION, APP);
    expect((await call(before)).status).toBe(401);
  });
});
