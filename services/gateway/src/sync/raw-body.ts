import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyAdapter } from '@nestjs/platform-fastify';

declare module 'fastify' {
  interface FastifyRequest {
    /** The exact bytes of a JSON body, kept for signature checks (webhooks). */
    rawBody?: Buffer;
  }
}

/**
 * Body parsers the sync routes need:
 * - JSON keeps its raw bytes (`request.rawBody`): a webhook's HMAC is over the exact bytes
 *   sent, and re-serializing parsed JSON would not reproduce them. Parsing itself stays
 *   Nest's default JSON parser (same limit and errors).
 * - `text/csv` is handed over as the request stream: uploads are parsed while they arrive
 *   and size-limited by the route, never buffered whole.
 */
export function installSyncBodyParsers(app: NestFastifyApplication): void {
  const adapter = app.getHttpAdapter() as unknown as FastifyAdapter;
  const fastify = adapter.getInstance();
  // Registered before Nest registers its own at init, which then leaves JSON to this one:
  // Nest's default JSON parser, same body limit, plus the raw bytes.
  adapter.useBodyParser('application/json', true, { bodyLimit: fastify.initialConfig.bodyLimit });
  fastify.addContentTypeParser(['text/csv', 'application/csv'], (_request, payload, done) => done(null, payload));
}
