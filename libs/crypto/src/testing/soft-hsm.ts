import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where Debian's softhsm2 package puts the module. */
export const SOFTHSM2_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export interface SoftHsmToken {
  /** PKCS11_MODULE */
  module: string;
  /** PKCS11_TOKEN_LABEL (the label asked for plus a random suffix, unique in the token directory) */
  tokenLabel: string;
  /** The user PIN (PKCS11_PIN) */
  pin: string;
  /** The SoftHSM2 config whose token directory holds it: SOFTHSM2_CONF for every process that uses it. */
  conf: string;
}

/** Writes a SoftHSM2 config with its own token directory under `dir`; returns its path. */
export async function writeSoftHsmConfig(dir: string): Promise<string> {
  const tokens = join(dir, 'softhsm-tokens');
  const conf = join(dir, 'softhsm2.conf');
  await mkdir(tokens, { recursive: true, mode: 0o700 });
  await writeFile(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`, {
    mode: 0o600,
  });
  return conf;
}

/**
 * The config this process's PKCS#11 module reads. SoftHSM2 takes SOFTHSM2_CONF from the real
 * process environment when the module is initialized, which a Jest test cannot change (each
 * test file gets a copy of process.env): jest.config.js points it at a throwaway token
 * directory for the whole run, and tests add their own tokens there, before their first open
 * (SoftHSM2 lists tokens once, at initialization).
 */
export function processSoftHsmConfig(): string {
  const conf = process.env.SOFTHSM2_CONF;
  if (!conf) throw new Error('SOFTHSM2_CONF is not set (jest.config.js sets it for test runs)');
  return conf;
}

/** A fresh SoftHSM2 token in the token directory of `conf` (several tokens may share one). */
export async function createSoftHsmToken(conf: string, label: string, pin = '1234'): Promise<SoftHsmToken> {
  if (!existsSync(SOFTHSM2_MODULE)) {
    throw new Error(`SoftHSM2 is not installed (${SOFTHSM2_MODULE}); apt-get install -y softhsm2`);
  }
  const tokenLabel = `${label.slice(0, 23)}-${randomBytes(4).toString('hex')}`;
  await run('softhsm2-util', ['--init-token', '--free', '--label', tokenLabel, '--pin', pin, '--so-pin', `${pin}-so`], {
    env: { ...process.env, SOFTHSM2_CONF: conf },
  });
  return { module: SOFTHSM2_MODULE, tokenLabel, pin, conf };
}
