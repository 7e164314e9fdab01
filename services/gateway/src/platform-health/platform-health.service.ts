import { AppError } from '@context-gateway/errors';
import { RpcClient } from '@context-gateway/messaging';
import { rpc, SERVICE_NAMES, type ServiceName } from '@context-gateway/proto';
import { Injectable } from '@nestjs/common';

export interface ServiceHealth {
  ready: boolean;
  /** Round trip over NATS, request to reply. */
  latencyMs: number;
  checks?: Record<string, 'up' | `down: ${string}`>;
  instance?: string;
  version?: string;
  uptimeSeconds?: number;
  /** Set when the service did not answer (not running, not subscribed, too slow). */
  error?: { code: string; message: string };
}

export interface PlatformHealth {
  status: 'ready' | 'degraded';
  services: Record<ServiceName, ServiceHealth>;
}

/**
 * Readiness of the whole platform, asked of each service over NATS (`<service>.v1.health`):
 * an answer proves the bus carries requests to that service, not just that a port is open.
 * The gateway asks itself the same way, so its own line proves its subscription works.
 */
@Injectable()
export class PlatformHealthService {
  constructor(private readonly rpcClient: RpcClient) {}

  async gather(): Promise<PlatformHealth> {
    const entries = await Promise.all(
      SERVICE_NAMES.map(async (service) => [service, await this.ask(service)] as const),
    );
    const services = Object.fromEntries(entries) as Record<ServiceName, ServiceHealth>;
    return { status: entries.every(([, h]) => h.ready) ? 'ready' : 'degraded', services };
  }

  private async ask(service: ServiceName): Promise<ServiceHealth> {
    const started = performance.now();
    const elapsed = () => Math.round((performance.now() - started) * 100) / 100;
    try {
      const reply = await this.rpcClient.request(rpc.health[service], {});
      return {
        ready: reply.ready,
        latencyMs: elapsed(),
        checks: Object.fromEntries(reply.checks.map((c) => [c.name, c.up ? 'up' : (`down: ${c.detail}` as const)])),
        instance: reply.instance,
        version: reply.version,
        uptimeSeconds: Math.round(reply.uptimeSeconds),
      };
    } catch (thrown) {
      const error = AppError.from(thrown);
      return { ready: false, latencyMs: elapsed(), error: { code: error.code, message: error.message } };
    }
  }
}
