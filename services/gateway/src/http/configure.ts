import { SERVICE_ENV } from '@context-gateway/service-kit';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import { installSyncBodyParsers } from '../sync/raw-body.js';
import { installAdmission } from './admission.js';
import { installBadPathAnswers, installClientErrorAnswers } from './client-errors.js';
import { installEdgeGuards } from './edge-guards.js';

/** The gateway's last touches on its Fastify app (main.ts, and the edge's int test, which boots the same way). */
export async function configureGateway(app: NestFastifyApplication, logger: Logger): Promise<void> {
  // Webhooks need JSON's raw bytes; export uploads arrive as a stream.
  installSyncBodyParsers(app);
  // Requests refused by Node's HTTP parser still answer problem+json with a code.
  installClientErrorAnswers(app, logger);
  installBadPathAnswers(app, logger);
  // One value per cookie name; cookie-authenticated writes only from our own origin.
  installEdgeGuards(app, logger, new URL(app.get<Env>(SERVICE_ENV).GATEWAY_PUBLIC_URL).origin);
  // Load shedding (503) and the shared per-key and per-address rate limits (429).
  await installAdmission(app, logger);
}
