import { webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';

// @peculiar/x509 (and the tsyringe container under it, which needs reflect-metadata) is
// loaded only when certificates are made, not by every service importing this library.
type X509 = typeof import('@peculiar/x509');

async function loadX509(): Promise<X509> {
  await import('reflect-metadata');
  return import('@peculiar/x509');
}

/** The files of a NATS TLS folder, named as cert-manager names a TLS Secret's keys. */
export const NATS_TLS_FILES = { ca: 'ca.crt', cert: 'tls.crt', key: 'tls.key' } as const;

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

function pem(x509: X509, der: ArrayBuffer, label: string): string {
  return `${x509.PemConverter.encode(der, label)}\n`;
}

/**
 * A private CA and one certificate for the NATS servers, signed by it, for TLS on client
 * connections and cluster routes (serverAuth and clientAuth: a route is both). Kept when
 * present, so a restart of the one-shot that calls this does not change what the services
 * trust; delete the folder to issue new ones. `hosts`: the DNS names and addresses clients
 * and routes use (compose: `nats`; a cluster: the pods' headless names). Files: `ca.crt`
 * (what clients pin, NATS_TLS_CA_FILE), `tls.crt`, `tls.key` (0600, the server's only).
 * For production, a CA of your own (cert-manager, an internal PKI) is the better source.
 */
export async function ensureNatsTls(
  dir: string,
  hosts: readonly string[],
  options: { validDays?: number; now?: Date } = {},
): Promise<{ created: boolean; caFile: string }> {
  const caFile = join(dir, NATS_TLS_FILES.ca);
  if ([NATS_TLS_FILES.ca, NATS_TLS_FILES.cert, NATS_TLS_FILES.key].every((f) => existsSync(join(dir, f)))) {
    return { created: false, caFile };
  }
  if (hosts.length === 0) throw new Error('name at least one host the NATS servers are reached at');
  const x509 = await loadX509();
  const crypto = webcrypto as unknown as Parameters<X509['cryptoProvider']['set']>[0];
  const now = options.now ?? new Date();
  const notBefore = new Date(now.getTime() - 5 * 60_000);
  const notAfter = new Date(now.getTime() + (options.validDays ?? 825) * DAY_MS);
  const caKeys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const ca = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: 'CN=Context Gateway NATS CA',
      keys: caKeys,
      notBefore,
      notAfter,
      signingAlgorithm: ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const serverKeys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const server = await x509.X509CertificateGenerator.create(
    {
      subject: `CN=${hosts[0]}`,
      issuer: ca.subject,
      notBefore,
      notAfter,
      publicKey: serverKeys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension(
          hosts.map((host) => ({ type: isIP(host) ? ('ip' as const) : ('dns' as const), value: host })),
        ),
        await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const key = await webcrypto.subtle.exportKey('pkcs8', serverKeys.privateKey);
  writeFileSync(join(dir, NATS_TLS_FILES.key), pem(x509, key, 'PRIVATE KEY'), { mode: 0o600 });
  writeFileSync(join(dir, NATS_TLS_FILES.cert), `${server.toString('pem')}\n`, { mode: 0o644 });
  // Last: its presence says the set is complete (a crash before leaves no CA to keep).
  writeFileSync(caFile, `${ca.toString('pem')}\n`, { mode: 0o644 });
  return { created: true, caFile };
}
