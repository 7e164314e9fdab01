import { createHash, timingSafeEqual } from 'node:crypto';

import { SERVICE_ENV } from '@context-gateway/service-kit';
import { Controller, Inject, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';

import { bearerToken } from '../auth/auth.guard.js';
import type { Env } from '../env.js';
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
  services: z
    .record(z.string(), serviceHealth)
    .optional()
    .describe('Each service, with its checks: only for the operator (Authorization: Bearer <OPERATOR_TOKEN>).'),
});

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

@Controller('v1/health')
export class PlatformHealthController {
  private readonly operatorDigest: Buffer | undefined;

  constructor(
    private readonly health: PlatformHealthService,
    @Inject(SERVICE_ENV) env: Env,
  ) {
    this.operatorDigest = env.OPERATOR_TOKEN ? digest(env.OPERATOR_TOKEN) : undefined;
  }

  @Route({
    method: 'GET',
    path: '',
    summary: 'Readiness of every service',
    description:
      "Asks each service over NATS; 200 when all answered ready, 503 otherwise. Anyone gets the status only; the operator's token adds each service's checks and errors.",
    tags: ['platform'],
    auth: 'none',
    success: {
      status: 200,
      schema: platformHealthSchema,
      description: 'Every service is ready (503 with the same body when not).',
    },
    errors: [],
  })
  async get(@Req() request: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply) {
    const health = await this.health.gather();
    reply.status(health.status === 'ready' ? 200 : 503).header('cache-control', 'no-store');
    // Checks and errors name internal parts and carry their messages: operators only.
    return this.isOperator(request) ? health : { status: health.status };
  }

  private isOperator(request: FastifyRequest): boolean {
    const token = bearerToken(request);
    return !!token && !!this.operatorDigest && timingSafeEqual(digest(token), this.operatorDigest);
  }
}
