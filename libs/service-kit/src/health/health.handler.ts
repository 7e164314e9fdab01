import { hostname } from 'node:os';

import type { MessageInitShape } from '@bufbuild/protobuf';
import { RpcHandler } from '@context-gateway/messaging';
import type { GetReadinessResponseSchema } from '@context-gateway/proto';
import { rpc, type ServiceName } from '@context-gateway/proto';
import { Controller, type Type } from '@nestjs/common';

import { ReadinessService } from './readiness.service.js';

/**
 * Answers `<service>.v1.health` with the same checks as /readyz. The descriptor differs per
 * service and decorators are static, so the handler class is made per service.
 */
export function createHealthHandler(service: ServiceName, version: string): Type<unknown> {
  const instance = `${hostname()}:${process.pid}`;

  @Controller()
  class HealthHandler {
    constructor(private readonly readiness: ReadinessService) {}

    @RpcHandler(rpc.health[service])
    async readiness_(): Promise<MessageInitShape<typeof GetReadinessResponseSchema>> {
      const { ready, checks } = await this.readiness.evaluate();
      return {
        service,
        ready,
        checks: checks.map((c) => ({ ...c })),
        uptimeSeconds: process.uptime(),
        version,
        instance,
      };
    }
  }
  return HealthHandler;
}
