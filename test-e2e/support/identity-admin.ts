// Operator-side helpers for e2e tests: create organizations, applications and API keys
// through the gateway's public admin API, exactly as `pnpm cg` does.

/** The operator token e2e stacks run with (pass `{ OPERATOR_TOKEN }` to startTestStack). */
export const OPERATOR_TOKEN = 'e2e-operator-token-0123456789abcdef0123456789';

export interface AdminClient {
  call<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  createOrganization(name: string): Promise<{ id: string; slug: string; name: string }>;
  createApplication(
    orgId: string,
    app: { name: string; callbackUrls: string[]; integrations?: string[]; scopes?: string[] },
  ): Promise<{ id: string; orgId: string; clientId: string; name: string }>;
  updateApplication(
    orgId: string,
    applicationId: string,
    change: Record<string, unknown>,
  ): Promise<{ id: string; status: string; scopes: string[]; integrations: string[]; callbackUrls: string[] }>;
  issueApiKey(applicationId: string): Promise<{ id: string; secret: string; prefix: string }>;
  revokeApiKey(applicationId: string, keyId: string): Promise<{ id: string; revokedAt: string | null }>;
}

export function adminClient(gatewayUrl: string, token = OPERATOR_TOKEN): AdminClient {
  const call = async <T>(method: string, path: string, body?: unknown) => {
    const res = await fetch(`${gatewayUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
  const ok = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await call<T>(method, path, body);
    if (res.status >= 300) throw new Error(`${method} ${path} → ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  return {
    call,
    createOrganization: (name) => ok('POST', '/v1/admin/organizations', { name }),
    createApplication: (orgId, app) =>
      ok('POST', `/v1/admin/organizations/${orgId}/applications`, { integrations: [], scopes: [], ...app }),
    updateApplication: (orgId, applicationId, change) =>
      ok('PATCH', `/v1/admin/organizations/${orgId}/applications/${applicationId}`, change),
    issueApiKey: (applicationId) => ok('POST', `/v1/admin/applications/${applicationId}/api-keys`),
    revokeApiKey: (applicationId, keyId) => ok('DELETE', `/v1/admin/applications/${applicationId}/api-keys/${keyId}`),
  };
}
