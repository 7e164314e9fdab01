import { Worker } from 'node:worker_threads';

import type { AuthorizationAnswer } from '@cedar-policy/cedar-wasm/nodejs';

import type { CedarQuery } from './cedar-oracle.js';

/**
 * A few worker threads running Cedar queries in batches. Cedar-wasm spends ~200 µs parsing
 * each random policy set, so 100,000 of them on one core take half a minute; spreading
 * them over the machine's cores keeps the differential test well under that.
 */
export class CedarPool {
  private readonly workers: Worker[];
  private readonly pending = new Map<
    number,
    { resolve: (a: AuthorizationAnswer[][]) => void; reject: (e: Error) => void }
  >();
  private nextId = 0;

  constructor(size: number) {
    this.workers = Array.from({ length: size }, () => {
      const worker = new Worker(new URL('./cedar-worker.mjs', import.meta.url));
      worker.on(
        'message',
        ({ id, answers, error }: { id: number; answers?: AuthorizationAnswer[][]; error?: string }) => {
          const waiter = this.pending.get(id);
          this.pending.delete(id);
          if (error !== undefined) waiter?.reject(new Error(error));
          else if (answers === undefined) waiter?.reject(new Error('the Cedar worker answered without answers'));
          else waiter?.resolve(answers);
        },
      );
      worker.on('error', (error) => {
        for (const waiter of this.pending.values()) waiter.reject(error);
        this.pending.clear();
      });
      return worker;
    });
  }

  run(queries: CedarQuery[]): Promise<AuthorizationAnswer[][]> {
    const id = this.nextId++;
    const worker = this.workers[id % this.workers.length];
    if (worker === undefined) return Promise.reject(new Error('the Cedar pool has no workers'));
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, queries });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
