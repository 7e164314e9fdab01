/**
 * A person signing in at the notes server's authorization server (oauth-mcp.ts) and
 * consenting, without a browser: follows its redirects with its cookies and submits the
 * development login form (any login and password) and the consent form, as a browser would,
 * until it redirects to `redirectPrefix`. Returns that redirect (the client's callback).
 */
export async function authorizeAtOAuthMcp(
  authorizationUrl: string,
  login: string,
  redirectPrefix: string,
): Promise<URL> {
  const cookies = new Map<string, string>();
  const cookieHeader = () => [...cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  let next = new URL(authorizationUrl);
  let form: URLSearchParams | undefined;
  for (let hop = 0; hop < 20; hop++) {
    const res = await fetch(next, {
      method: form ? 'POST' : 'GET',
      redirect: 'manual',
      headers: {
        cookie: cookieHeader(),
        ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
      ...(form ? { body: form.toString() } : {}),
    });
    for (const line of res.headers.getSetCookie()) {
      const pair = line.split(';', 1)[0] ?? '';
      const eq = pair.indexOf('=');
      cookies.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    const location = res.headers.get('location');
    if (location) {
      next = new URL(location, next);
      form = undefined;
      if (next.href.startsWith(redirectPrefix)) return next;
      continue;
    }
    const html = await res.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    if (res.status !== 200 || !action) throw new Error(`the authorization server stopped with ${res.status}`);
    next = new URL(action.replace(/&amp;/g, '&'), next);
    form = html.includes('name="login"')
      ? new URLSearchParams({ prompt: 'login', login, password: 'any' })
      : new URLSearchParams({ prompt: 'consent' });
  }
  throw new Error('the authorization server redirected too often');
}
