import { Injectable } from '@nestjs/common';

interface CheckResult {
  name: string;
  up: boolean;
  /** Why it is down, in words safe to show; empty when up. */
  detail: string;
}

export type ReadinessCheck = () => Promise<{ up: boolean; detail: string }>;

export interface Readiness {
  ready: boolean;
  checks: CheckResult[];
}

/**
 * Readiness = every registered dependency answers now. The runtime registers the database
 * and NATS; a service adds what it cannot serve without (e.g. a loaded key ring).
 * Checks run concurrently, each bounded, so /readyz answers within a second even when a
 * dependency hangs.
 */
@Injectable()
export class ReadinessService {
  private readonly checks = new Map<string, ReadinessCheck>();
  private draining = false;

  register(name: string, check: ReadinessCheck): void {
    this.checks.set(name, check);
  }

  /** Called at the start of shutdown: the load balancer should stop sending us work. */
  markDraining(): void {
    this.draining = true;
  }

  async evaluate(timeoutMs = 1_500): Promise<Readiness> {
    const checks = await Promise.all(
      [...this.checks].map(async ([name, check]): Promise<CheckResult> => {
        let timer: NodeJS.Timeout | undefined;
        try {
          const result = await Promise.race([
            check(),
            new Promise<{ up: boolean; detail: string }>((resolve) => {
              timer = setTimeout(() => resolve({ up: false, detail: `no answer within ${timeoutMs} ms` }), timeoutMs);
            }),
          ]);
          return { name, ...result };
        } catch (error) {
          return { name, up: false, detail: (error as Error).message };
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    if (this.draining) checks.push({ name: 'lifecycle', up: false, detail: 'shutting down' });
    return { ready: checks.every((c) => c.up), checks };
  }
}
