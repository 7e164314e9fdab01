import { AppError } from '@context-gateway/errors';
import { Module, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';

import { AccountsModule } from '../accounts/accounts.module.js';
import { APPROVAL_FORM_ROUTES } from '../approvals/approvals.controller.js';
import { PORTAL_FORM_ROUTES } from '../portal/portal.controller.js';
import { ConnectFlowService } from './connect.service.js';
import { ConnectSessionsController } from './connect-sessions.controller.js';
import { ConsentController } from './consent.controller.js';
import { MyConnectionsController } from './my-connections.controller.js';

const FORM = 'application/x-www-form-urlencoded';
/** The only routes that take an HTML form: the consent page's, the approval page's and the portal's posts. Every other route reads JSON only. */
const FORM_ROUTES = new Set(['POST /v1/connect/:token', ...APPROVAL_FORM_ROUTES, ...PORTAL_FORM_ROUTES]);

/** The connect flow (steps 1-3): the app's connect sessions and connections, the person's consent pages, the sources' callback. */
@Module({
  imports: [AccountsModule],
  controllers: [ConnectSessionsController, ConsentController, MyConnectionsController],
  providers: [ConnectFlowService],
  exports: [ConnectFlowService],
})
export class ConnectModule implements OnModuleInit {
  constructor(private readonly adapterHost: HttpAdapterHost) {}

  /**
   * The consent page posts an HTML form; Fastify parses only JSON by default. The parser
   * answers on the form routes only: a form anywhere else is 415 unsupported_media_type, so
   * a cross-site HTML form (which needs no CORS preflight) cannot reach a JSON route.
   */
  onModuleInit(): void {
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    // Nest's adapter registers a form parser for every route: replaced by this one.
    if (fastify.hasContentTypeParser(FORM)) fastify.removeContentTypeParser(FORM);
    fastify.addContentTypeParser(FORM, { parseAs: 'string', bodyLimit: 16 * 1024 }, (request, body, done) => {
      if (!FORM_ROUTES.has(`${request.method} ${request.routeOptions.url ?? ''}`))
        return done(new AppError('unsupported_media_type', 'This route takes application/json'), undefined);
      const params = new URLSearchParams(body as string);
      const out: Record<string, string> = {};
      for (const [key, value] of params) {
        // A repeated field is an attack or a bug, never a list we accept.
        if (key in out) return done(Object.assign(new Error('repeated form field'), { statusCode: 400 }), undefined);
        out[key] = value;
      }
      done(null, out);
    });
  }
}
