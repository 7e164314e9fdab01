import { describe, expect, it } from '@jest/globals';

import { ContextGateway } from './client.js';
import { GrantRevokedError } from './errors.js';
import type { ConnectionRecord } from './types.js';

const CONNECTION = '6f1c2b7e-3a4d-4e5f-8a9b-0c1d2e3f4a5b';
const SYNCED_AT = '2026-12-04T11:59:00.000Z';

const record = (n: number): ConnectionRecord => ({
  id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
  type: 'code.repository',
  externalId: `repo-${n}`,
  updatedAt: SYNCED_AT,
  sourceUpdatedAt: SYNCED_AT,
  deleted: false,
  data: { name: `repo-${n}` },
});

/**
 * A gateway holding `total` records, paged by `limit` with opaque cursors; answers
 * grant_revoked once `revokeAfter` pages were served.
 */
function pagedGateway(total: number, revokeAfter = Infinity) {
  const urls: URL[] = [];
  const fetch = (input: string | URL) => {
    const url = new URL(input);
    urls.push(url);
    if (urls.length > revokeAfter)
      return Promise.resolve(
        new Response(JSON.stringify({ code: 'grant_revoked', status: 403, detail: 'revoked', requestId: 'r' }), {
          status: 403,
        }),
      );
    const limit = Number(url.searchParams.get('limit') ?? 100);
    const cursor = url.searchParams.get('cursor');
    const from = cursor ? Number(Buffer.from(cursor, 'base64url').toString()) : 0;
    const records = Array.from({ length: Math.max(0, Math.min(limit, total - from)) }, (_, i) => record(from + i));
    const next =
      from + records.length < total ? Buffer.from(String(from + records.length)).toString('base64url') : null;
    return Promise.resolve(
      new Response(JSON.stringify({ records, nextCursor: next, syncedAt: SYNCED_AT }), { status: 200 }),
    );
  };
  return { client: new ContextGateway({ baseUrl: 'https://gw.example', apiKey: 'cg_sk_test', fetch }), urls };
}

describe('records', () => {
  it('lists one page with its query, cursor and syncedAt', async () => {
    const { client, urls } = pagedGateway(5);
    const page = await client.records.list(CONNECTION, {
      type: 'code.repository',
      since: new Date('2026-12-01T00:00:00Z'),
      limit: 2,
      fields: ['name', 'url'],
    });
    expect(page.records.map((r) => r.externalId)).toEqual(['repo-0', 'repo-1']);
    expect(page.nextCursor).not.toBeNull();
    expect(page.syncedAt).toBe(SYNCED_AT);
    expect(urls[0]!.pathname).toBe(`/v1/connections/${CONNECTION}/records`);
    expect(Object.fromEntries(urls[0]!.searchParams)).toEqual({
      type: 'code.repository',
      since: '2026-12-01T00:00:00.000Z',
      limit: '2',
      fields: 'name,url',
    });
  });

  it('iterates every record across pages once each, following the cursors', async () => {
    const { client, urls } = pagedGateway(7);
    const seen: string[] = [];
    for await (const r of client.records.iterate(CONNECTION, { limit: 3 })) seen.push(r.externalId);
    expect(seen).toEqual(Array.from({ length: 7 }, (_, i) => `repo-${i}`));
    expect(urls).toHaveLength(3);
    expect(urls[1]!.searchParams.get('cursor')).toBeTruthy();
    expect(urls.every((u) => u.searchParams.get('limit') === '3')).toBe(true);
  });

  it('stops at an empty last page and asks nothing more', async () => {
    const { client, urls } = pagedGateway(0);
    const pages = [];
    for await (const page of client.records.pages(CONNECTION)) pages.push(page);
    expect(pages).toEqual([{ records: [], nextCursor: null, syncedAt: SYNCED_AT }]);
    expect(urls).toHaveLength(1);
  });

  it('throws the typed error mid-walk when the grant is revoked between pages', async () => {
    const { client } = pagedGateway(10, 1);
    const seen: string[] = [];
    const walk = async () => {
      for await (const r of client.records.iterate(CONNECTION, { limit: 4 })) seen.push(r.externalId);
    };
    await expect(walk()).rejects.toBeInstanceOf(GrantRevokedError);
    expect(seen).toHaveLength(4);
  });

  it('encodes the connection id into the path', async () => {
    const { client, urls } = pagedGateway(1);
    await client.records.list('a/../b');
    expect(urls[0]!.pathname).toBe('/v1/connections/a%2F..%2Fb/records');
  });
});
