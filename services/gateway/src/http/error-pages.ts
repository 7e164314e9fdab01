import type { AppError } from '@context-gateway/errors';
import type { ErrorPageRenderer } from '@context-gateway/service-kit';
import type { FastifyRequest } from 'fastify';

import { errorPage } from '../connect/connect-pages.js';

/** The routes a person's browser opens (pages, not API): their errors are pages too. */
const PAGE_ROUTES = new Set([
  '/v1/connect/:token',
  '/v1/connect/callback',
  '/v1/connect/mcp/callback/:registrationKey',
  '/v1/auth/signin',
  '/v1/auth/sso/callback',
]);

const isPage = (request: FastifyRequest) => {
  const route = request.routeOptions.url ?? '';
  return PAGE_ROUTES.has(route) || route === '/account' || route.startsWith('/account/');
};

function words(route: string, error: AppError): { title: string; message: string } {
  if (error.status >= 500)
    return {
      title: error.status === 503 ? 'Please try again in a moment' : 'Something went wrong',
      message: 'This could not be completed on our side. Nothing was changed; please try again.',
    };
  if (error.code === 'rate_limited')
    return { title: 'Too many attempts', message: 'Please wait a minute, then try again.' };
  if (error.code === 'csrf_invalid')
    return { title: 'Please try again', message: 'The form expired or was not sent from this page.' };
  const malformed = error.code === 'validation_failed' || error.code === 'unknown_field';
  if (malformed && (route === '/v1/connect/callback' || route.startsWith('/v1/connect/mcp/callback/')))
    return {
      title: 'This sign-in cannot be completed',
      message: 'The answer from the source is incomplete or damaged. Start again from the app.',
    };
  if (malformed && route.startsWith('/v1/connect/'))
    return {
      title: 'This link cannot be used',
      message:
        'The connect link is incomplete or damaged. Open it again from the app exactly as it gave it, or ask the app to start again.',
    };
  if (malformed && route === '/v1/auth/signin')
    return {
      title: 'This sign-in link cannot be used',
      message: 'The link asks to go somewhere after signing in that is not on this site. Start again from the app.',
    };
  return { title: 'This request cannot be used', message: 'The address or the form is not one this site can use.' };
}

/**
 * A browser that opened one of the gateway's pages gets an HTML error page (with the stable
 * error code shown), never problem+json: a truncated connect link, a bad `return_to`, a
 * malformed callback. API routes, and clients not asking for HTML, keep problem+json.
 */
export const gatewayErrorPage: ErrorPageRenderer = (request, error) => {
  if (!isPage(request)) return undefined;
  if (!String(request.headers.accept ?? '').includes('text/html')) return undefined;
  const { title, message } = words(request.routeOptions.url ?? '', error);
  return errorPage(title, message, error.code);
};
