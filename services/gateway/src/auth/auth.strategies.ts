import { Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';

/** Authenticates a request for one auth kind: resolves when it may pass (after setting what it knows on the request), throws AppError otherwise. */
export type AuthStrategy = (request: FastifyRequest) => Promise<void>;

/**
 * Auth kinds served outside this module (e.g. `auditor`, by the audit module): register
 * one at module init. The guard refuses any auth kind with no strategy.
 */
@Injectable()
export class AuthStrategies {
  private readonly strategies = new Map<string, AuthStrategy>();

  register(kind: string, strategy: AuthStrategy): void {
    if (this.strategies.has(kind)) throw new Error(`auth strategy ${kind} registered twice`);
    this.strategies.set(kind, strategy);
  }

  get(kind: string): AuthStrategy | undefined {
    return this.strategies.get(kind);
  }
}
