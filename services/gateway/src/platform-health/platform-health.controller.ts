import { Controller, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';

import { Route } from '../http/route.decorator.js';
import { PlatformHealthService } from './platform-health.service.js';

const serviceHealth = z.object({
  ready: z.boolean(),
  latencyMs: z.number().describe('Round trip over NATS, request to reply.'),
  checks: z.record(z.string(), z.string()).optional().describe('Each dependency: `up` or `down: <why>`.'),
  instance: z.string().optional().describe('host:pid of the process that answered.'),
  version: z.string().optional(),
  uptimeSeconds: z.number().optional(),
  error: z
    .object({ code: z.string(), message: z.string() })
    .optional()
    .describe('Set when the service did not answer.'),
});

const platformHealthSchema = z.object({
  status: z.enum(['ready', 'degraded']),
  services: z.record(z.string(), serviceHealth),
});

@Controller('v1/health')
export class PlatformHealthController {
  constructor(private readonly health: PlatformHealthService) {}

  @Route({
    method: 'GET',
    path: '',
    summary: 'Readiness of every service',
    description: "Asks each service over NATS; 200 when all answered ready, 503 otherwise, with each one's checks.",
    tags: ['platform'],
    auth: 'none',
    success: {
      status: 200,
      schema: platformHealthSchema,
      description: 'Every service is ready (503 with the same body when not).',
    },
    errors: [],
  })
  async get(@Res({ passthrough: true }) reply: FastifyReply) {
    const health = await this.health.gather();
    reply.status(health.status === 'ready' ? 200 : 503);
    return health;
  }
}
