import { AppError } from '@context-gateway/errors';
import { describe, expect, it } from '@jest/globals';
import { NotFoundException } from '@nestjs/common';

import { normalizeHttpError, toProblem } from './problem.js';

describe('problem details', () => {
  it('renders an AppError as RFC 9457 with the stable code and field errors', () => {
    const problem = toProblem(
      new AppError('validation_failed', 'scopes is empty', [{ path: 'scopes', message: 'must not be empty' }]),
      '/v1/x',
      'req-1',
    );
    expect(problem).toEqual({
      type: 'https://context-gateway.dev/problems/validation_failed',
      title: 'Validation failed',
      status: 422,
      detail: 'scopes is empty',
      instance: '/v1/x',
      code: 'validation_failed',
      requestId: 'req-1',
      errors: [{ path: 'scopes', message: 'must not be empty' }],
    });
  });

  it("maps Fastify's own errors by their codes", () => {
    const tooLarge = Object.assign(new Error('Request body is too large'), {
      code: 'FST_ERR_CTP_BODY_TOO_LARGE',
      statusCode: 413,
    });
    const badJson = Object.assign(new Error('Unexpected token'), {
      code: 'FST_ERR_CTP_INVALID_JSON_BODY',
      statusCode: 400,
    });
    const media = Object.assign(new Error('Unsupported Media Type: text/plain'), {
      code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE',
      statusCode: 415,
    });
    expect(normalizeHttpError(tooLarge).code).toBe('payload_too_large');
    expect(normalizeHttpError(badJson).code).toBe('malformed_request');
    expect(normalizeHttpError(media).code).toBe('unsupported_media_type');
  });

  it("maps Nest's HttpExceptions by status and hides anything unknown behind internal", () => {
    expect(normalizeHttpError(new NotFoundException()).code).toBe('route_not_found');
    const secret = normalizeHttpError(new Error('connect ECONNREFUSED postgres://admin:pw@db'));
    expect(secret.code).toBe('internal');
    expect(toProblem(secret, '/', 'r').detail).not.toContain('pw');
  });
});
