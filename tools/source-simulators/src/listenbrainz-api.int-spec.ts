import { TestClock } from '@context-gateway/clock/testing';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';

import { defaultListenBrainzToken } from './providers/listenbrainz.data.js';
import { type RunningSimulator, startSimulator } from './server.js';

/**
 * The ListenBrainz simulator against what the real API documents and does
 * (listenbrainz/webserver/views/api.py, api_tools.py, docs/users/json.rst): the token check,
 * max_ts/min_ts/count, the listen JSON, and brainzutils' rate limit.
 */

interface Listen {
  listened_at: number;
  inserted_at: number;
  recording_msid: string;
  user_name: string;
  track_metadata: {
    artist_name: string;
    track_name?: string;
    release_name?: string;
    additional_info?: Record<string, unknown>;
    mbid_mapping?: { recording_mbid: string; artists: { artist_mbid: string; artist_credit_name: string }[] };
  };
}
interface Page {
  payload: { count: number; listens: Listen[]; latest_listen_ts: number; oldest_listen_ts: number; user_id: string };
}

describe('ListenBrainz API', () => {
  let sim: RunningSimulator;
  const login = 'lena';
  let token: string;
  const get = (path: string, headers: Record<string, string> = { authorization: `Token ${token}` }) =>
    fetch(`${sim.url}${path}`, { headers });
  const page = async (query: string) => {
    const res = await get(`/1/user/${login}/listens${query}`);
    expect(res.status).toBe(200);
    return ((await res.json()) as Page).payload;
  };

  beforeAll(async () => {
    sim = await startSimulator({ provider: 'listenbrainz', rateLimit: 10_000 });
    await sim.control.createAccount({ login, counts: { listens: 2500 } });
    token = defaultListenBrainzToken(`listenbrainz:${login}`);
  });
  afterAll(async () => {
    await sim.stop();
  });

  it('validate-token names the user for a valid token and says valid: false (still 200) for another', async () => {
    const ok = await get('/1/validate-token');
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ code: 200, message: 'Token valid.', valid: true, user_name: login });
    const bad = await get('/1/validate-token', { authorization: 'Token 00000000-0000-4000-8000-000000000000' });
    expect(bad.status).toBe(200);
    expect(await bad.json()).toEqual({ code: 200, message: 'Token invalid.', valid: false });
    // The query parameter still works for old clients; no token at all is a 400.
    expect(((await (await get(`/1/validate-token?token=${token}`, {})).json()) as { valid: boolean }).valid).toBe(true);
    const none = await get('/1/validate-token', {});
    expect(none.status).toBe(400);
    expect(await none.json()).toEqual({ code: 400, error: 'You need to provide an Authorization token.' });
    // A token minted later works, and stops working once revoked.
    const minted = (await sim.control.createApiKey(login)).key;
    expect(minted).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    await sim.control.revokeApiKey(minted);
    const revoked = await get('/1/validate-token', { authorization: `Token ${minted}` });
    expect(((await revoked.json()) as { valid: boolean }).valid).toBe(false);
  });

  it('the newest 25 by default, newest first, in the documented listen shape', async () => {
    const p = await page('');
    expect(p.count).toBe(25);
    expect(p.user_id).toBe(login);
    const times = p.listens.map((l) => l.listened_at);
    expect(times).toEqual([...times].sort((a, b) => b - a));
    expect(p.latest_listen_ts).toBe(times[0]);
    const all = (await sim.control.list<{ listened_at: number }>(login, 'listens')).items.map((l) => l.listened_at);
    expect(p.oldest_listen_ts).toBe(Math.min(...all));
    const l = p.listens[0]!;
    expect(l).toMatchObject({
      user_name: login,
      recording_msid: expect.stringMatching(/^[0-9a-f-]{36}$/),
      inserted_at: expect.any(Number),
      track_metadata: { artist_name: expect.any(String), track_name: expect.any(String) },
    });
    expect(l.track_metadata.additional_info).toMatchObject({ recording_msid: l.recording_msid });
    // Over the history: the fields scrobblers send or not, and the server's mapping or not.
    const many = (await page('?count=1000')).listens;
    const infos = many.map((x) => x.track_metadata.additional_info ?? {});
    expect(infos.some((i) => typeof i.duration_ms === 'number')).toBe(true);
    expect(infos.some((i) => typeof i.duration === 'number')).toBe(true);
    expect(infos.some((i) => typeof i.isrc === 'string' && i.isrc.includes('-'))).toBe(true);
    expect(many.some((x) => x.track_metadata.mbid_mapping === undefined)).toBe(true);
    expect(many.some((x) => (x.track_metadata.mbid_mapping?.artists.length ?? 0) > 1)).toBe(true);
    // One recording listened to twice has one msid.
    expect(new Set(many.map((x) => x.recording_msid)).size).toBeLessThan(many.length);
  });

  it('max_ts walks back and min_ts walks forward (the closest after it), both exclusive; count is capped at 1000', async () => {
    const first = await page('?count=5000');
    expect(first.count).toBe(1000);
    const edge = first.listens.at(-1)!.listened_at;
    const older = await page(`?count=10&max_ts=${edge}`);
    expect(older.listens.every((l) => l.listened_at < edge)).toBe(true);
    expect(older.listens[0]!.listened_at).toBeLessThan(edge);
    // min_ts: the 10 listens right after it, still newest first.
    const after = await page(`?count=10&min_ts=${edge}`);
    expect(after.listens).toHaveLength(10);
    expect(after.listens.every((l) => l.listened_at > edge)).toBe(true);
    const sorted = first.listens.map((l) => l.listened_at).filter((t) => t > edge);
    expect(after.listens.map((l) => l.listened_at)).toEqual(sorted.slice(-10));
    // Both: between them, exclusive; a window the wrong way round is a 400.
    const between = await page(`?min_ts=${older.listens.at(-1)!.listened_at}&max_ts=${edge}`);
    expect(between.listens.map((l) => l.listened_at)).toEqual(older.listens.slice(0, -1).map((l) => l.listened_at));
    const wrong = await get(`/1/user/${login}/listens?min_ts=${edge}&max_ts=${edge}`);
    expect(wrong.status).toBe(400);
    expect(await wrong.json()).toEqual({ code: 400, error: 'max_ts should be greater than min_ts' });
    expect((await get(`/1/user/${login}/listens?max_ts=yesterday`)).status).toBe(400);
    expect((await get(`/1/user/${login}/listens?count=-1`)).status).toBe(400);
    // Walking back page by page reaches every listen once.
    const seen = new Set<string>();
    let maxTs: number | undefined;
    for (;;) {
      const p = await page(`?count=1000${maxTs ? `&max_ts=${maxTs}` : ''}`);
      p.listens.forEach((l) => seen.add(`${l.listened_at}:${l.recording_msid}`));
      if (p.listens.length < 1000) break;
      maxTs = p.listens.at(-1)!.listened_at;
    }
    expect(seen.size).toBe(2500);
  });

  it('listens are public (no token needed); an unknown user is a 404 in ListenBrainz error shape', async () => {
    expect((await get(`/1/user/${login}/listens?count=1`, {})).status).toBe(200);
    const res = await get('/1/user/nobody-here/listens');
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ code: 404, error: 'Cannot find user: nobody-here' });
  });

  it('quirks: a listen without track_name, a listen without additional_info', async () => {
    const [a, b] = (await sim.control.list<{ id: string; listened_at: number }>(login, 'listens')).items
      .sort((x, y) => y.listened_at - x.listened_at)
      .slice(0, 2);
    await sim.control.setQuirks(login, { listensWithoutTrackName: [a!.id], listensWithoutAdditionalInfo: [b!.id] });
    const p = await page('?count=2');
    expect(p.listens[0]!.track_metadata.track_name).toBeUndefined();
    expect(p.listens[0]!.track_metadata.artist_name).toEqual(expect.any(String));
    expect(p.listens[1]!.track_metadata.additional_info).toBeUndefined();
    await sim.control.setQuirks(login, {});
    expect((await page('?count=1')).listens[0]!.track_metadata.track_name).toEqual(expect.any(String));
  });

  it("rate limit: X-RateLimit-* on every answer; over the window's limit a 429 with Reset-In, then it lets through again", async () => {
    // 12:00:03 on the clock: the 10 s window (aligned to the clock, as brainzutils' are) resets in 7 s.
    const clock = new TestClock(Date.UTC(2026, 0, 1, 12, 0, 3));
    const limited = await startSimulator({ provider: 'listenbrainz', rateLimit: 3, clock });
    try {
      const answers: Response[] = [];
      for (let i = 0; i < 5; i++) answers.push(await fetch(`${limited.url}/1/user/rob/listens?count=1`));
      expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 429, 429]);
      expect(answers.map((r) => r.headers.get('x-ratelimit-remaining'))).toEqual(['2', '1', '0', '0', '0']);
      const over = answers[3]!;
      expect(over.headers.get('x-ratelimit-limit')).toBe('3');
      expect(over.headers.get('x-ratelimit-reset-in')).toBe('7');
      expect(over.headers.get('x-ratelimit-reset')).toBe(String(Date.UTC(2026, 0, 1, 12, 0, 10) / 1000));
      expect(over.headers.get('retry-after')).toBeNull();
      expect(await over.text()).toContain('You have exceeded your rate limit');
      clock.advance(7_000);
      expect((await fetch(`${limited.url}/1/user/rob/listens?count=1`)).status).toBe(200);
    } finally {
      await limited.stop();
    }
  });
});
