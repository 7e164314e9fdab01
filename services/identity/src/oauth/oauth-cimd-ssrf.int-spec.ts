import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { rpc } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { type MetadataDocumentServer, startMetadataDocumentServer } from './testing/metadata-document-server.js';
import { type OAuthTestBed, startOAuthTestBed } from './testing/oauth-test-bed.js';

// The production fetch of metadata documents: no test knob, so oidc-provider's own SSRF guard
// (a dispatcher closing any connection to a special-use address, after DNS resolution) is
// all that stands between an allowed URL and an internal address. Every other CIMD test goes
// through the test-only fetch (oauth-cimd.int-spec.ts); this one does not.
//
// Under Jest's VM oidc-provider cannot find fetch's dispatcher to guard, so the guard itself
// is exercised in a plain Node process (below); identity under Jest shows the other half:
// with no guard it fetches nothing rather than fetching unguarded.

const execFileAsync = promisify(execFile);

let docs: MetadataDocumentServer;
let bed: OAuthTestBed;
const documentFor = (url: string) =>
  JSON.stringify({
    client_id: url,
    client_name: 'Internal',
    redirect_uris: ['http://127.0.0.1/cb'],
    token_endpoint_auth_method: 'none',
    application_type: 'native',
  });

beforeAll(async () => {
  docs = await startMetadataDocumentServer((url) => ({ body: documentFor(url) }));
  // NODE_ENV=test but neither OAUTH_CIMD_TEST_CA_FILE nor OAUTH_CIMD_ALLOW_LOOPBACK: production's fetch.
  bed = await startOAuthTestBed('identity_cimd_ssrf', { NODE_ENV: 'test' });
}, 60_000);

afterAll(async () => {
  await bed?.stop();
  await docs?.stop();
});

/**
 * Resolves each URL as a metadata-URL client in a plain Node process: oidc-provider with this
 * service's feature configuration and production fetch (client-metadata-documents.ts,
 * transpiled as it is), every URL allowed. The process trusts the document server's CA, so
 * TLS would succeed: a refusal can only be the guard's. Prints each URL's error code.
 */
async function resolveInPlainNode(urls: string[]): Promise<Record<string, string>> {
  const script = `
    import { createRequire } from 'node:module';
    import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
    import { tmpdir } from 'node:os';
    import { join } from 'node:path';
    import { pathToFileURL } from 'node:url';
    const { source, identityDir, rootDir, urls } = JSON.parse(process.env.CIMD_CHILD);
    const ts = createRequire(join(rootDir, 'package.json'))('typescript');
    const fromIdentity = createRequire(join(identityDir, 'package.json'));
    const fileUrl = (specifier) => pathToFileURL(fromIdentity.resolve(specifier)).href;
    const js = ts.transpileModule(readFileSync(source, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText
      .replace("'oidc-provider/lib/helpers/fetch_request.js'", JSON.stringify(fileUrl('oidc-provider/lib/helpers/fetch_request.js')))
      .replace("'oidc-provider'", JSON.stringify(fileUrl('oidc-provider')));
    const dir = mkdtempSync(join(tmpdir(), 'cimd-plain-'));
    writeFileSync(join(dir, 'client-metadata-documents.mjs'), js);
    const cimd = await import(pathToFileURL(join(dir, 'client-metadata-documents.mjs')).href);
    rmSync(dir, { recursive: true, force: true });
    const { default: Provider } = await import(fileUrl('oidc-provider'));
    const policy = { allowedHosts: undefined, allowedByAnOrganization: async () => true };
    const provider = new Provider('http://127.0.0.1:1/oauth', {
      features: { clientIdMetadataDocument: cimd.clientIdMetadataDocumentFeature(policy) },
      fetch: cimd.metadataFetch(policy),
      fetchResponseBodyLimits: cimd.FETCH_RESPONSE_BODY_LIMITS,
      sectorIdentifierUriValidate: cimd.sectorIdentifierUriValidate,
    });
    const codes = {};
    for (const url of urls) {
      try {
        await provider.Client.find(url);
        codes[url] = 'resolved';
      } catch (error) {
        codes[url] = cimd.metadataDocumentErrorCode(error, url) ?? String(error);
      }
    }
    process.stdout.write(JSON.stringify(codes));
  `;
  const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', script], {
    env: {
      PATH: process.env['PATH'] ?? '',
      NODE_EXTRA_CA_CERTS: docs.caFile,
      CIMD_CHILD: JSON.stringify({
        source: fileURLToPath(new URL('client-metadata-documents.ts', import.meta.url)),
        identityDir: fileURLToPath(new URL('../../', import.meta.url)),
        rootDir: fileURLToPath(new URL('../../../../', import.meta.url)),
        urls,
      }),
    },
    timeout: 30_000,
  });
  return JSON.parse(stdout) as Record<string, string>;
}

describe('the production fetch of metadata documents', () => {
  it('in plain Node, refuses loopback and private addresses with client_metadata_private_address, fetching nothing', async () => {
    const urls = [`${docs.origin()}/loopback.json`, `${docs.origin('127.0.0.2')}/private.json`];
    const codes = await resolveInPlainNode(urls);
    expect(codes).toEqual(Object.fromEntries(urls.map((u) => [u, 'client_metadata_private_address'])));
    expect(docs.requests.filter((r) => urls.includes(r))).toEqual([]);
  }, 40_000);

  it('identity with no test knob: an allowed URL on 127.0.0.1 is a coded 400, never a 500, and nothing is fetched', async () => {
    const url = `${docs.origin()}/allowed-internal.json`;
    // The admin API refuses an IP literal without the test knob...
    await expect(
      bed.rpcClient.request(rpc.identity.createApplication, {
        orgId: bed.orgId,
        name: 'Internal',
        integrations: ['github'],
        scopes: ['github:read:repos'],
        clientMetadataUrl: url,
      }),
    ).rejects.toMatchObject({ code: 'validation_failed' });
    // ...so the row is written directly: a DNS name resolving to 127.0.0.1 is the same case.
    const { application } = await bed.rpcClient.request(rpc.identity.createApplication, {
      orgId: bed.orgId,
      name: 'Internal',
      integrations: ['github'],
      scopes: ['github:read:repos'],
      clientMetadataUrl: 'https://internal.example/client.json',
    });
    await bed.harness.db.pool.query('UPDATE applications SET client_metadata_url = $1 WHERE id = $2', [
      url,
      application?.id,
    ]);
    const res = await fetch(
      bed.authorizationUrl({ client_id: url }, { code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' }),
      { redirect: 'manual' },
    );
    const code = /Error code: <code>([^<]+)<\/code>/.exec(await res.text())?.[1];
    expect(res.status).toBe(400);
    expect(['client_metadata_private_address', 'client_metadata_unavailable']).toContain(code);
    expect(docs.requests).not.toContain(url);
  });
});
