import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { SERVICE_NAMES } from '@context-gateway/proto';
import { createUser, fromSeed } from '@nats-io/nkeys';

import {
  allNatsPermissions,
  NATS_BOOTSTRAP_IDENTITY,
  type NatsIdentity,
  type NatsPermissions,
} from './nats-permissions.js';
import { ensureNatsTls, NATS_TLS_FILES } from './nats-tls.js';

/** Every identity that gets a seed: the services, then the bootstrap. */
export const NATS_IDENTITIES: readonly NatsIdentity[] = [...SERVICE_NAMES, NATS_BOOTSTRAP_IDENTITY];

/** The seed file of one identity in a credentials folder (what NATS_NKEY_SEED_FILE names). */
export function seedFileOf(dir: string, identity: string): string {
  return join(dir, `${identity}.nk`);
}

/** The nats-server configuration fragment with every user (`include` it, or pass it with -c). */
export const NATS_AUTH_CONFIG_FILE = 'auth.conf';

/**
 * Reads a user seed and checks it is one (`SU…`, a valid nkey): a wrong file fails here,
 * naming the file, instead of as an authorization violation at the server.
 */
export function readUserSeed(file: string): Uint8Array {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new Error(`cannot read the NATS seed file ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, {
      cause: error,
    });
  }
  const seed = new TextEncoder().encode(text);
  try {
    if (!text.startsWith('SU')) throw new Error('not a user seed');
    fromSeed(seed).getPublicKey();
  } catch {
    throw new Error(`${file} does not hold an NATS user nkey seed (a line starting with SU)`);
  }
  return seed;
}

/** The public key of the seed in `file`, creating the seed first if there is none. */
function ensureSeed(file: string): string {
  if (!existsSync(file)) {
    const seed = new TextDecoder().decode(createUser().getSeed());
    writeFileSync(file, `${seed}\n`, { mode: 0o600 });
  }
  return fromSeed(readUserSeed(file)).getPublicKey();
}

/**
 * Makes sure `dir` has a seed per identity (creating only the missing ones, so running it
 * again keeps everyone's keys) and writes `auth.conf` with each identity's public key and
 * its rights, generated from the catalog. Returns the public keys. Seeds are written 0600
 * in a 0700 folder: each is one service's secret. `extraUsers` (tests only: an observer,
 * the e2e tests' probe) get a seed `<name>.nk` and the rights given.
 */
export function writeNatsCredentials(
  dir: string,
  extraUsers: Record<string, NatsPermissions> = {},
): Record<string, string> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const publicKeys = {} as Record<NatsIdentity, string>;
  for (const identity of NATS_IDENTITIES) publicKeys[identity] = ensureSeed(seedFileOf(dir, identity));
  const extra = Object.entries(extraUsers).map(([name, permissions]) => ({
    name,
    nkey: ensureSeed(seedFileOf(dir, name)),
    permissions,
  }));
  writeFileSync(
    join(dir, NATS_AUTH_CONFIG_FILE),
    natsAuthConfig(
      publicKeys,
      extra.map(({ nkey, permissions }) => ({ nkey, permissions })),
    ),
  );
  return { ...publicKeys, ...Object.fromEntries(extra.map((u) => [u.name, u.nkey])) };
}

/** The sub-folder of a laid-out credentials folder that nats-server mounts: `auth.conf` only. */
export const NATS_SERVER_CREDENTIALS_DIR = 'server';

/**
 * writeNatsCredentials, then the folder laid out for containers that each mount one piece
 * of it (compose's `nats-credentials` volume): `<dir>/<identity>/seed.nk` per identity (a
 * service mounts only its own) and `<dir>/server/auth.conf` (public keys and rights only).
 * With `tlsHosts`, also a CA and a server certificate for those names (ensureNatsTls, in
 * `<dir>/tls`, kept once made): `server/` gets `tls.crt`/`tls.key`, each identity `ca.crt`.
 */
export async function layOutNatsCredentials(
  dir: string,
  options: { tlsHosts?: readonly string[] } = {},
): Promise<Record<string, string>> {
  const keys = writeNatsCredentials(dir);
  const tlsDir = join(dir, 'tls');
  if (options.tlsHosts) await ensureNatsTls(tlsDir, options.tlsHosts);
  for (const identity of NATS_IDENTITIES) {
    mkdirSync(join(dir, identity), { recursive: true, mode: 0o700 });
    copyFileSync(seedFileOf(dir, identity), join(dir, identity, 'seed.nk'));
    chmodSync(join(dir, identity, 'seed.nk'), 0o600);
    if (options.tlsHosts) copyFileSync(join(tlsDir, NATS_TLS_FILES.ca), join(dir, identity, NATS_TLS_FILES.ca));
  }
  const server = join(dir, NATS_SERVER_CREDENTIALS_DIR);
  mkdirSync(server, { recursive: true, mode: 0o755 });
  copyFileSync(join(dir, NATS_AUTH_CONFIG_FILE), join(server, NATS_AUTH_CONFIG_FILE));
  // nats-server may run as another user than the one writing it; auth.conf holds no secret.
  chmodSync(join(server, NATS_AUTH_CONFIG_FILE), 0o644);
  if (options.tlsHosts) {
    for (const file of [NATS_TLS_FILES.cert, NATS_TLS_FILES.key, NATS_TLS_FILES.ca]) {
      copyFileSync(join(tlsDir, file), join(server, file));
    }
    // The server's key: readable by whoever runs nats-server (root in the nats image) only.
    chmodSync(join(server, NATS_TLS_FILES.key), 0o600);
  }
  return keys;
}

export interface NatsUser {
  nkey: string;
  permissions: NatsPermissions;
}

/**
 * The `authorization` block of a nats-server configuration (JSON is valid nats-server
 * configuration syntax, and it quotes `$JS.API...` so no `$` is read as a variable).
 * `extra` adds users beyond the catalog's (tests: an observer).
 */
export function natsAuthConfig(publicKeys: Record<NatsIdentity, string>, extra: NatsUser[] = []): string {
  const permissions = allNatsPermissions();
  const users: NatsUser[] = [
    ...NATS_IDENTITIES.map((identity) => ({ nkey: publicKeys[identity], permissions: permissions[identity] })),
    ...extra,
  ];
  const header = [
    '# Generated from the proto subject catalog (libs/messaging nats-permissions.ts) by',
    '# `pnpm nats:credentials <dir>`: one nkey user per service and the bootstrap. Public keys',
    '# only; the seeds stay in the folder beside it. Regenerate after a catalog change.',
  ].join('\n');
  return `${header}\nauthorization: ${JSON.stringify({ users }, null, 2)}\n`;
}
