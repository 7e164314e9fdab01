import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const SOFTHSM2_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
/** The services' default PKCS11_KEY_LABELs (their env.ts). */
const KEK_LABELS = [
  'context-gateway.connection-broker.kek',
  'context-gateway.personal-server.kek',
  'context-gateway.identity.kek',
];

/**
 * TEST_KEY_PROVIDER=pkcs11 runs a stack with every key-holding service on KEY_PROVIDER=pkcs11:
 * one fresh SoftHSM2 token for the stack (its own config and token directory in `scratch`),
 * each service with its own key label in it (their env.ts defaults), the PIN from a file.
 * Anything else (unset, `local`): the local keyring files, as by default.
 */
export function keyStoreEnv(rootDir: string, scratch: string): Record<string, string> {
  const provider = process.env.TEST_KEY_PROVIDER ?? 'local';
  if (provider === 'local') return {};
  if (provider !== 'pkcs11') throw new Error(`TEST_KEY_PROVIDER must be local or pkcs11, not ${provider}`);
  if (!existsSync(SOFTHSM2_MODULE))
    throw new Error(`TEST_KEY_PROVIDER=pkcs11 needs SoftHSM2 (${SOFTHSM2_MODULE}): apt-get install -y softhsm2`);
  const dir = join(scratch, 'softhsm');
  mkdirSync(join(dir, 'tokens'), { recursive: true, mode: 0o700 });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  const pinFile = join(dir, 'pin');
  writeFileSync(pinFile, '4711\n', { mode: 0o600 });
  execFileSync(
    'softhsm2-util',
    ['--init-token', '--free', '--label', 'context-gateway', '--pin', '4711', '--so-pin', '4711-so'],
    {
      env: { ...process.env, SOFTHSM2_CONF: conf },
      stdio: 'ignore',
    },
  );
  // The KEKs are made once, here, before the services start: several personal-server shards
  // creating a missing key at the same moment could each make one (PKCS#11 has no atomic
  // create-if-absent). Production provisions keys the same way, before the first start.
  const crypto = pathToFileURL(join(rootDir, 'libs', 'crypto', 'dist', 'index.js')).href;
  const script = `
    const { Pkcs11KeyProvider } = await import(${JSON.stringify(crypto)});
    for (const keyLabel of ${JSON.stringify(KEK_LABELS)}) {
      const provider = await Pkcs11KeyProvider.open({ module: ${JSON.stringify(SOFTHSM2_MODULE)}, tokenLabel: 'context-gateway', pin: '4711', keyLabel, createIfMissing: true });
      provider.close();
    }`;
  execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, SOFTHSM2_CONF: conf },
    stdio: 'inherit',
  });
  return {
    KEY_PROVIDER: 'pkcs11',
    SOFTHSM2_CONF: conf,
    PKCS11_MODULE: SOFTHSM2_MODULE,
    PKCS11_TOKEN_LABEL: 'context-gateway',
    PKCS11_PIN_FILE: pinFile,
  };
}
