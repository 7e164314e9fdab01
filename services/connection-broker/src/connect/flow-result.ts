import type { ConnectSession } from './connect-sessions.repository.js';

/** Where a connect step sends the browser next, and what the gateway records about it. */
export interface FlowResult {
  redirectUrl: string;
  sessionId: string;
  connectionId?: string;
  grantId?: string;
  oauthState?: string;
  orgId?: string;
  applicationId?: string;
  /** The flow ended without a connection for a reason the person reads first (see DecideConnectSessionResponse.refused). */
  refused?: 'conflict';
}

/** The app's exact registered callback URL, plus our parameters and the app's state. */
export function appCallback(
  session: Pick<ConnectSession, 'callbackUrl' | 'appState'>,
  params: Record<string, string>,
): string {
  const url = new URL(session.callbackUrl);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  if (session.appState) url.searchParams.set('state', session.appState);
  return url.href;
}

/** Back to the app with an OAuth-style error: the person (or the source) said no, or the source failed. */
export function refusal(session: ConnectSession, error: 'access_denied' | 'source_error' | 'conflict'): FlowResult {
  return {
    redirectUrl: appCallback(session, { error }),
    sessionId: session.id,
    orgId: session.orgId,
    applicationId: session.applicationId,
    ...(error === 'conflict' ? { refused: error } : {}),
  };
}
