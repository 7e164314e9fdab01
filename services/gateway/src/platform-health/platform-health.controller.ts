import { Controller, Get, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { PlatformHealthService } from './platform-health.service.js';

@Controller('v1/health')
export class PlatformHealthController {
  constructor(private readonly health: PlatformHealthService) {}

  /** 200 when every service answered ready over NATS, 503 otherwise; the body says which. */
  @Get()
  async get(@Res({ passthrough: true }) reply: FastifyReply) {
    const health = await this.health.gather();
    reply.status(health.status === 'ready' ? 200 : 503);
    return health;
  }
}
