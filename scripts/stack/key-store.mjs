// @ts-check
// The PKCS#11 tests (libs/crypto, and the e2e tier with TEST_KEY_PROVIDER=pkcs11) use a real
// key store: SoftHSM2 through graphene-pk11's native addon (pkcs11js). `pnpm test` makes sure
// both are there, so a fresh machine passes without steps done by hand.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { ensureDebianPackage } from './apt.mjs';
import { MissingDependencyError } from './infra.mjs';

const SOFTHSM2_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

/** Installs Debian's softhsm2 when its module is missing (root on Debian), else says how. @param {(line: string) => void} log */
export function ensureSoftHsm(log) {
  ensureDebianPackage(
    {
      pkg: 'softhsm2',
      path: SOFTHSM2_MODULE,
      hint: 'the PKCS#11 key-store tests need SoftHSM2: `sudo apt-get install -y softhsm2`',
      why: 'for the key-store tests',
    },
    log,
  );
}

/**
 * Builds the pkcs11js addon when it does not load (pnpm skipped or failed its build, e.g.
 * without Node's headers at install time), against the machine's Node headers.
 * @param {string} root
 * @param {(line: string) => void} log
 */
export function ensurePkcs11Addon(root, log) {
  const fromCrypto = createRequire(join(root, 'libs', 'crypto', 'package.json'));
  const loads = () => {
    try {
      fromCrypto('graphene-pk11');
      return true;
    } catch {
      return false;
    }
  };
  if (loads()) return;
  if (!existsSync('/usr/include/node/node.h')) {
    throw new MissingDependencyError(
      'the pkcs11js addon (graphene-pk11, KEY_PROVIDER=pkcs11) is not built and Node headers are missing: ' +
        'install them (Debian: `apt-get install -y nodejs-dev` or a Node with headers) and run ' +
        '`npm_config_nodedir=/usr pnpm rebuild pkcs11js`',
    );
  }
  log('the pkcs11js addon is not built: building it against /usr/include/node (npm_config_nodedir=/usr)');
  const result = spawnSync('pnpm', ['rebuild', 'pkcs11js'], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, npm_config_nodedir: '/usr' },
  });
  if (result.status !== 0 || !loads()) {
    throw new MissingDependencyError(
      'building the pkcs11js addon failed: it needs g++, make and python3 (`apt-get install -y build-essential python3`)',
    );
  }
}
