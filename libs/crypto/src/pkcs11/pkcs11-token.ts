import { AppError } from '@context-gateway/errors';
import type * as Graphene from 'graphene-pk11';

/** How to reach one token of a PKCS#11 module (an HSM, SoftHSM2, or a cloud KMS front end). */
export interface Pkcs11Config {
  /** Path of the vendor's PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  module: string;
  /** The token's label (CKA_LABEL of the token, at most 32 characters). */
  tokenLabel: string;
  /** The user PIN (normal user, not the security officer). */
  pin: string;
}

type GrapheneLib = typeof Graphene;

const BUILD_HINT =
  'build it with `npm_config_nodedir=/usr pnpm rebuild pkcs11js` (needs g++, make, python3 and the Node headers in /usr/include/node)';

/**
 * graphene-pk11 is an optional dependency with a native addon (pkcs11js): it is imported on
 * first use only, so KEY_PROVIDER=local keeps working where the addon did not build.
 */
async function loadGraphene(): Promise<GrapheneLib> {
  try {
    return await import('graphene-pk11');
  } catch (cause) {
    throw new AppError(
      'key_store_unavailable',
      `KEY_PROVIDER=pkcs11 needs the optional package graphene-pk11 and its native addon pkcs11js, which did not load; ${BUILD_HINT}`,
      [],
      { cause },
    );
  }
}

/**
 * C_Initialize/C_Finalize are per process and per module, while several key users (a KEK
 * provider and a signer, or tests) may share one module: count the users, finalize after the last.
 */
const loaded = new Map<string, { module: Graphene.Module; users: number }>();

function acquireModule(graphene: GrapheneLib, path: string): Graphene.Module {
  const entry = loaded.get(path);
  if (entry) {
    entry.users += 1;
    return entry.module;
  }
  let module: Graphene.Module;
  try {
    module = graphene.Module.load(path);
    module.initialize();
  } catch (cause) {
    throw new AppError(
      'key_store_unavailable',
      `The PKCS#11 module ${path} cannot be loaded (${errorText(cause)}); check PKCS11_MODULE`,
      [],
      { cause },
    );
  }
  loaded.set(path, { module, users: 1 });
  return module;
}

function releaseModule(path: string): void {
  const entry = loaded.get(path);
  if (!entry) return;
  entry.users -= 1;
  if (entry.users > 0) return;
  loaded.delete(path);
  try {
    entry.module.finalize();
  } catch {
    // Finalizing is best effort: the process is letting go of the module anyway.
  }
}

/** A logged-in read/write session on one token; the objects it finds stay valid while it is open. */
export class Pkcs11Token {
  #open = true;

  private constructor(
    readonly graphene: GrapheneLib,
    readonly session: Graphene.Session,
    readonly label: string,
    private readonly modulePath: string,
  ) {}

  static async open(config: Pkcs11Config): Promise<Pkcs11Token> {
    const graphene = await loadGraphene();
    const module = acquireModule(graphene, config.module);
    try {
      const slot = findSlot(module, config.tokenLabel);
      const session = slot.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
      try {
        login(session, config);
      } catch (error) {
        session.close();
        throw error;
      }
      return new Pkcs11Token(graphene, session, config.tokenLabel, config.module);
    } catch (error) {
      releaseModule(config.module);
      throw error;
    }
  }

  /** Token objects matching `template` (token objects only: never this session's scratch objects). */
  find(template: Graphene.ITemplate): Graphene.SessionObject[] {
    const found = this.session.find({ ...template, token: true });
    const objects: Graphene.SessionObject[] = [];
    for (let i = 0; i < found.length; i += 1) objects.push(found.items(i));
    return objects;
  }

  close(): void {
    if (!this.#open) return;
    this.#open = false;
    try {
      this.session.close();
    } finally {
      releaseModule(this.modulePath);
    }
  }
}

function findSlot(module: Graphene.Module, tokenLabel: string): Graphene.Slot {
  const slots = module.getSlots(true);
  const seen: string[] = [];
  for (let i = 0; i < slots.length; i += 1) {
    const slot = slots.items(i);
    // Token labels are blank-padded to 32 bytes.
    const label = slot.getToken().label.trim();
    if (label === tokenLabel) return slot;
    seen.push(label);
  }
  throw new AppError(
    'key_store_unavailable',
    `No token labelled "${tokenLabel}" in the PKCS#11 module (tokens present: ${seen.map((l) => `"${l}"`).join(', ') || 'none'}); check PKCS11_TOKEN_LABEL`,
  );
}

const CKR_USER_ALREADY_LOGGED_IN = 0x100;
const PIN_ERRORS = new Set([
  'CKR_PIN_INCORRECT',
  'CKR_PIN_INVALID',
  'CKR_PIN_LEN_RANGE',
  'CKR_PIN_EXPIRED',
  'CKR_PIN_LOCKED',
]);

function login(session: Graphene.Session, config: Pkcs11Config): void {
  try {
    session.login(config.pin);
  } catch (cause) {
    // Login state is per token and process: another user of this token logged in already.
    if ((cause as { code?: number }).code === CKR_USER_ALREADY_LOGGED_IN) return;
    const text = errorText(cause);
    if (PIN_ERRORS.has(text)) {
      throw new AppError(
        'key_store_login_failed',
        `The token "${config.tokenLabel}" refused the PIN (${text}); check PKCS11_PIN / PKCS11_PIN_FILE`,
        [],
        { cause },
      );
    }
    throw new AppError('key_store_unavailable', `Login to the token "${config.tokenLabel}" failed (${text})`, [], {
      cause,
    });
  }
}

/** A PKCS#11 error's CKR_ name (never key material: the binding's messages are return-code names). */
export function errorText(error: unknown): string {
  return error instanceof Error ? (error.message.split('\n')[0]?.slice(0, 200) ?? 'unknown') : 'unknown';
}
