import { LOGGER, SERVICE_ENV } from '@context-gateway/service-kit';
import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';

import type { Env } from '../env.js';
import { installOAuthProxy } from './oauth-proxy.js';
import { bearerChallenge, oauthUrls } from './oauth-urls.js';
import { installProtectedResourceMetadata } from './protected-resource.js';

/**
 * The gateway's OAuth surface: the authorization server's paths forwarded to identity,
 * the Protected Resource Metadata, and a Bearer challenge naming that metadata on every
 * 401 (RFC 9728 §5.1), so a client that was refused can find where to get a token.
 */
@Injectable()
export class OAuthEdge implements OnModuleInit {
  constructor(
    private readonly http: HttpAdapterHost,
    @Inject(SERVICE_ENV) private readonly env: Env,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onModuleInit(): void {
    const fastify = this.http.httpAdapter.getInstance<FastifyInstance>();
    const urls = oauthUrls(this.env.GATEWAY_PUBLIC_URL);
    installOAuthProxy(fastify, {
      urls,
      identityUrl: this.env.IDENTITY_HTTP_URL,
      timeoutMs: this.env.OAUTH_PROXY_TIMEOUT_MS,
      logger: this.logger,
    });
    installProtectedResourceMetadata(fastify, urls);
    const challenge = bearerChallenge(urls);
    fastify.addHook('onSend', (_request, reply, payload, done) => {
      if (reply.statusCode === 401 && !reply.hasHeader('www-authenticate')) reply.header('www-authenticate', challenge);
      done(null, payload);
    });
  }
}
