import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';

import { z } from 'zod';

/** What the witness keeps per log: the latest checkpoint it cosigned, as it answered it. */
export interface WitnessedCheckpoint {
  origin: string;
  treeSize: number;
  /** Base64 root hash of that tree. */
  rootHash: string;
  /** The checkpoint note as submitted, with the witness's cosignature line appended. */
  cosignedNote: string;
  /** POSIX seconds of the cosignature. */
  cosignedAt: number;
}

const stored = z
  .object({
    origin: z.string().min(1),
    treeSize: z.number().int().min(0),
    rootHash: z.string().length(44),
    cosignedNote: z.string().min(1),
    cosignedAt: z.number().int().positive(),
  })
  .strict();

/**
 * One JSON file per log origin in a directory of the witness's own, replaced atomically
 * (write a temporary file, fsync, rename, fsync the directory): after a crash a log's state
 * is the old or the new one, never a torn mix. A file that cannot be read back is an error,
 * never "no state" — forgetting a log would let it be rolled back.
 */
export class CheckpointStore {
  private constructor(private readonly dir: string) {}

  static async open(dir: string): Promise<CheckpointStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // Fail at boot, not on the first submission, when the directory cannot be written.
    const store = new CheckpointStore(dir);
    const probe = join(dir, `.probe-${randomBytes(6).toString('hex')}`);
    await (await open(probe, 'wx', 0o600)).close();
    await unlink(probe);
    return store;
  }

  private fileOf(origin: string): string {
    return join(this.dir, `${createHash('sha256').update(origin).digest('hex')}.json`);
  }

  async get(origin: string): Promise<WitnessedCheckpoint | undefined> {
    let text: string;
    try {
      text = await readFile(this.fileOf(origin), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const parsed = stored.safeParse(JSON.parse(text));
    if (!parsed.success || parsed.data.origin !== origin) {
      throw new Error(`the witness state of ${origin} (${this.fileOf(origin)}) is corrupt; restore it from a backup`);
    }
    return parsed.data;
  }

  async put(state: WitnessedCheckpoint): Promise<void> {
    const file = this.fileOf(state.origin);
    const temporary = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    const handle = await open(temporary, 'wx', 0o600);
    try {
      await handle.writeFile(JSON.stringify(state), 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, file);
    const dir = await open(this.dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
