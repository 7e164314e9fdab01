import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { dirname } from 'node:path';

import { AppError } from '@context-gateway/errors';

/**
 * The local keyring file: every KEK version ever created (until removed) and which one is
 * current. Versions only go up; a removed version's wrapped keys are gone for good.
 */
export interface Keyring {
  current: number;
  keys: Array<{ version: number; key: Buffer; createdAt: string }>;
}

const FORMAT = 'context-gateway/keyring@1';
const KEK_BASE64 = /^[A-Za-z0-9+/]{43}=$/; // exactly 32 bytes
/** Group/other bits. Owner-execute is harmless, so 0700 passes; 0640 and 0644 do not. */
const INSECURE_BITS = 0o077;

interface KeyringJson {
  format: typeof FORMAT;
  current: number;
  keys: Array<{ version: number; key: string; createdAt: string }>;
}

function invalid(path: string, why: string, cause?: unknown): AppError {
  return new AppError('key_file_invalid', `Key file ${path}: ${why}`, [], { cause });
}

/**
 * Reads and validates a keyring. Permissions are checked on the open descriptor (fstat),
 * so the file cannot be swapped between the check and the read.
 */
export async function readKeyring(path: string): Promise<Keyring> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(path, constants.O_RDONLY);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw invalid(path, code === 'ENOENT' ? 'does not exist' : `cannot be opened (${code})`, cause);
  }
  let text: string;
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw invalid(path, 'is not a regular file');
    if ((stat.mode & INSECURE_BITS) !== 0) {
      const mode = (stat.mode & 0o777).toString(8).padStart(4, '0');
      throw new AppError(
        'key_file_insecure',
        `Key file ${path} has mode ${mode}; it must not be accessible to group or others (chmod 600)`,
      );
    }
    text = await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
  return parseKeyring(path, text);
}

function parseKeyring(path: string, text: string): Keyring {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw invalid(path, 'is not valid JSON', cause);
  }
  const doc = json as Partial<KeyringJson> | null;
  if (typeof doc !== 'object' || doc === null || doc.format !== FORMAT) {
    throw invalid(path, `format must be "${FORMAT}"`);
  }
  if (!Array.isArray(doc.keys) || doc.keys.length === 0) throw invalid(path, 'has no keys');
  const keys: Keyring['keys'] = [];
  for (const entry of doc.keys as unknown[]) {
    const e = entry as Partial<KeyringJson['keys'][number]> | null;
    if (typeof e !== 'object' || e === null || !isVersion(e.version)) {
      throw invalid(path, 'every key needs an integer version ≥ 1');
    }
    if (keys.some((k) => k.version === e.version)) throw invalid(path, `version ${e.version} appears twice`);
    if (typeof e.key !== 'string' || !KEK_BASE64.test(e.key)) {
      throw invalid(path, `version ${e.version} is not a base64 256-bit key`);
    }
    keys.push({
      version: e.version,
      key: Buffer.from(e.key, 'base64'),
      createdAt: typeof e.createdAt === 'string' ? e.createdAt : '',
    });
  }
  if (!isVersion(doc.current) || !keys.some((k) => k.version === doc.current)) {
    throw invalid(path, '"current" must name one of its key versions');
  }
  return { current: doc.current, keys };
}

function isVersion(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 0xffff_ffff;
}

function serialize(keyring: Keyring): string {
  const json: KeyringJson = {
    format: FORMAT,
    current: keyring.current,
    keys: keyring.keys.map((k) => ({ version: k.version, key: k.key.toString('base64'), createdAt: k.createdAt })),
  };
  return `${JSON.stringify(json, null, 2)}\n`;
}

/** Writes a 0600 temp file beside `path` and fsyncs it; the caller links or renames it in. */
async function writeTemp(path: string, keyring: Keyring): Promise<string> {
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  // O_EXCL: never follow or reuse something an attacker pre-created under that name.
  const handle = await fs.open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(serialize(keyring), 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  return temp;
}

/** Makes a rename/link durable across a crash. */
async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Creates the keyring only if nothing exists at `path`. The content is written to a temp
 * file first and then hard-linked into place: link() fails with EEXIST instead of
 * overwriting, so concurrent starters agree on one keyring, and a crash never leaves a
 * half-written key file behind. Returns false if another writer got there first.
 */
export async function createKeyringExclusive(path: string, keyring: Keyring): Promise<boolean> {
  const dir = dirname(path);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = await writeTemp(path, keyring);
  try {
    await fs.link(temp, path);
    await syncDir(dir);
    return true;
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw cause;
  } finally {
    await fs.unlink(temp).catch(() => undefined);
  }
}

/** Atomically replaces the keyring (temp file + rename), keeping mode 0600. */
export async function replaceKeyring(path: string, keyring: Keyring): Promise<void> {
  const temp = await writeTemp(path, keyring);
  try {
    await fs.rename(temp, path);
  } catch (cause) {
    await fs.unlink(temp).catch(() => undefined);
    throw cause;
  }
  await syncDir(dirname(path));
}
