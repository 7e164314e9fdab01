import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';

import type { Witness } from './witness.js';

function problem(reply: FastifyReply, status: number, code: string, detail: string) {
  return reply
    .status(status)
    .type('application/problem+json')
    .send(JSON.stringify({ type: 'about:blank', title: code.replace(/_/g, ' '), status, code, detail }));
}

/**
 * The witness's HTTP interface. Submission (C2SP tlog-witness): `POST /add-checkpoint`,
 * answered with the spec's status codes (409 carries the held size as `text/x.tlog.size`).
 * Monitoring (the spec leaves it open): `GET /checkpoint?origin=<origin>` returns the latest
 * cosigned checkpoint of a log, what `audit:verify --witness-url` compares the stored log
 * with; `GET /vkey` the witness's verifier key; `GET /healthz`.
 */
export async function witnessHttp(
  witness: Witness,
  options: { logger: Logger; bodyLimit: number; verifierKey: string },
): Promise<FastifyInstance> {
  const app = Fastify({
    bodyLimit: options.bodyLimit,
    logger: false,
    // A request that trickles in gets 408 and a closed connection.
    requestTimeout: 10_000,
    connectionTimeout: 10_000,
    forceCloseConnections: 'idle',
  });
  // The body is the protocol's plain text, whatever Content-Type the client sent (the spec names none).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, _req, reply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500) options.logger.error({ err: error.message }, 'witness: request failed');
    const code = status === 413 ? 'payload_too_large' : status === 500 ? 'internal' : 'bad_request';
    return problem(reply, status, code, status === 500 ? 'the witness could not answer' : error.message);
  });
  app.setNotFoundHandler((_req, reply) => problem(reply, 404, 'route_not_found', 'no such route'));

  app.post('/add-checkpoint', async (req, reply) => {
    if (typeof req.body !== 'string') return problem(reply, 400, 'malformed_request', 'the body is empty');
    const answer = await witness.addCheckpoint(req.body);
    if (answer.status === 200) return reply.status(200).type('text/plain; charset=utf-8').send(answer.cosignature);
    if (answer.status === 409) return reply.status(409).type('text/x.tlog.size').send(`${answer.size}\n`);
    return problem(reply, answer.status, answer.code, answer.detail);
  });

  app.get('/checkpoint', async (req, reply) => {
    const origin = (req.query as Record<string, unknown>).origin;
    if (typeof origin !== 'string' || origin === '') {
      return problem(reply, 400, 'malformed_request', 'give the log as ?origin=');
    }
    const held = await witness.latest(origin);
    if (!held) return problem(reply, 404, 'no_checkpoint', `no checkpoint of ${origin} was cosigned`);
    return reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(held.cosignedNote);
  });

  app.get('/vkey', (_req, reply) => reply.type('text/plain; charset=utf-8').send(`${options.verifierKey}\n`));
  app.get('/healthz', (_req, reply) => reply.send({ status: 'ok' }));
  return app;
}
