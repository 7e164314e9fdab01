import { Clock } from '@context-gateway/clock';
import { LOGGER } from '@context-gateway/service-kit';
import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';

import { ChallengesRepository } from './accounts.repository.js';

const EVERY_MS = 10 * 60_000;

/**
 * Deletes ceremonies that expired over an hour ago. Starting a ceremony needs no account,
 * so without this anyone could grow the table without bound; with it, the table holds at
 * most about an hour of ceremony starts.
 */
@Injectable()
export class ChallengePruner implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly challenges: ChallengesRepository,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly clock: Clock,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => {
      this.challenges
        .prune(this.clock.date())
        .catch((error: Error) => this.logger.warn({ err: error.message }, 'pruning passkey challenges failed'));
    }, EVERY_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }
}
