/**
 * Plays the person in front of the browser, without a browser: opens an authorization
 * URL, signs in on the simulator's login form, answers the consent page, and returns
 * where the source redirected (the client's redirect_uri with `code` or `error`).
 * For tests that exercise the OAuth client rather than the pages.
 */
export interface AuthorizeAs {
  login: string;
  password?: string;
  decision?: 'allow' | 'deny';
  /** Cookie header from an earlier sign-in, to skip the login form (returned below). */
  sessionCookie?: string;
}

export async function completeAuthorization(
  authorizationUrl: string | URL,
  as: AuthorizeAs,
): Promise<{ redirect: URL; sessionCookie: string | undefined }> {
  const url = new URL(authorizationUrl);
  let sessionCookie = as.sessionCookie;
  const first = await fetch(url, { redirect: 'manual', headers: sessionCookie ? { cookie: sessionCookie } : {} });
  if (first.status === 302) return { redirect: redirectOf(first), sessionCookie };
  let page = await first.text();
  if (first.status !== 200) throw new Error(`authorization page answered ${first.status}: ${textOf(page)}`);

  if (page.includes('action="/oauth-ui/login"')) {
    const login = await fetch(new URL('/oauth-ui/login', url), {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ request_id: requestId(page), login: as.login, password: as.password ?? 'password' }),
    });
    page = await login.text();
    if (login.status !== 200) throw new Error(`sign-in answered ${login.status}: ${textOf(page)}`);
    const setCookie = login.headers.get('set-cookie');
    if (setCookie) sessionCookie = setCookie.split(';')[0];
  }

  const consent = await fetch(new URL('/oauth-ui/consent', url), {
    method: 'POST',
    redirect: 'manual',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(sessionCookie ? { cookie: sessionCookie } : {}),
    },
    body: new URLSearchParams({ request_id: requestId(page), decision: as.decision ?? 'allow' }),
  });
  if (consent.status !== 302) throw new Error(`consent answered ${consent.status}: ${textOf(await consent.text())}`);
  return { redirect: redirectOf(consent), sessionCookie };
}

function redirectOf(res: Response): URL {
  const location = res.headers.get('location');
  if (location === null) throw new Error(`a ${res.status} redirect without a Location header`);
  return new URL(location);
}

function requestId(html: string): string {
  const m = /name="request_id" value="([^"]+)"/.exec(html);
  const id = m?.[1];
  if (id === undefined) throw new Error('no request_id on the page');
  return id;
}

function textOf(html: string): string {
  return html
    .replace(/<style[\s\S]*?<\/style>/g, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 300);
}
