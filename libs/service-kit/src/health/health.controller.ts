import { Controller, Get, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';

import { ReadinessService } from './readiness.service.js';

/**
 * Probes for orchestrators: liveness says the process can still serve (it answers as long
 * as the event loop turns); readiness says its dependencies answer right now.
 */
@Controller()
export class HealthController {
  constructor(private readonly readiness: ReadinessService) {}

  @Get('healthz')
  live(): { status: 'alive' } {
    return { status: 'alive' };
  }

  @Get('readyz')
  async ready(@Res({ passthrough: true }) reply: FastifyReply) {
    const { ready, checks } = await this.readiness.evaluate();
    reply.status(ready ? 200 : 503);
    // Up or down only: this port is the gateway's public one too, and a check's detail is an
    // internal error message. Operators read the details over NATS (`<service>.v1.health`,
    // shown by the gateway's /v1/health with the operator token).
    return {
      status: ready ? 'ready' : 'not_ready',
      checks: Object.fromEntries(checks.map((c) => [c.name, c.up ? 'up' : 'down'])),
    };
  }
}
