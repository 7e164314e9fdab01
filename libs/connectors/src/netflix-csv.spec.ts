import { Readable } from 'node:stream';

import { validateRecord } from '@context-gateway/record-catalog';
import { describe, expect, it } from '@jest/globals';

import { CsvError, type NetflixItem, parseCsv, parseNetflixViewingActivity } from './netflix-csv.js';

const HEADER =
  'Profile Name,Start Time,Duration,Attributes,Title,Supplemental Video Type,Device Type,Bookmark,Latest Bookmark,Country\r\n';

/** The text as a byte stream in `size`-byte chunks: cuts fall inside characters, quotes and CRLFs. */
function chunked(text: string, size: number): AsyncIterable<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
  return Readable.from(chunks);
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('parseCsv', () => {
  const tricky = '\uFEFFa,b,c\r\n"x, with comma","say ""hi""","two\nlines"\r\n\r\nlast,,\n';
  it.each([1, 2, 3, 7, 1000])(
    'gives the same rows and line numbers whatever the chunk size (%i bytes)',
    async (size) => {
      const rows = await collect(parseCsv(chunked(tricky, size)));
      expect(rows).toEqual([
        { line: 1, fields: ['a', 'b', 'c'] },
        { line: 2, fields: ['x, with comma', 'say "hi"', 'two\nlines'] },
        { line: 5, fields: ['last', '', ''] },
      ]);
    },
  );

  it('refuses an unclosed quote, naming the line it started on', async () => {
    await expect(collect(parseCsv(chunked('a,b\n"open,2\n3\n', 4)))).rejects.toMatchObject({ line: 2 });
  });

  it('refuses a record longer than the limit instead of buffering it', async () => {
    await expect(collect(parseCsv(chunked(`"${'x'.repeat(500)}`, 64), 100))).rejects.toBeInstanceOf(CsvError);
  });
});

describe('parseNetflixViewingActivity', () => {
  const file =
    HEADER +
    'Ana,2024-03-01 20:15:00,00:42:10,,Dark: Season 1: Secrets (Episode 1),,Chrome PC (Cadmium),00:42:10,00:42:10,DE (Germany)\r\n' +
    'Ana,2024-03-02 25:00:00,00:10:00,,Broken Time,,TV,00:10:00,00:10:00,DE (Germany)\r\n' +
    'Ana,2024-03-03 21:00:00,00:05:00,,Trailer: Something,TRAILER,TV,00:05:00,00:05:00,DE (Germany)\r\n' +
    'Ana,2024-03-01 20:14:30,00:00:30,,Dark: Season 1: Secrets (Episode 1),HOOK,TV,00:00:30,00:00:30,DE (Germany)\r\n' +
    'Ben,2024-03-04 10:00:00,1:02:03,,"Movie, With Comma",,Phone,1:02:03,1:02:03,US (United States)\r\n' +
    'too,few,fields\r\n';

  it('imports good rows as play events and reports bad rows with their line numbers', async () => {
    const items = await collect(parseNetflixViewingActivity(chunked(file, 17)));
    const problems = items.filter((i): i is Extract<NetflixItem, { problem: string }> => 'problem' in i);
    const records = items.flatMap((i) => ('record' in i ? [i.record] : []));
    expect(problems.map((p) => p.line)).toEqual([3, 7]);
    expect(problems[0]!.problem).toMatch(/Start Time/);
    expect(problems[1]!.problem).toMatch(/expected 10 fields, found 3/);
    // The TRAILER and the HOOK (supplemental videos) are not viewings: only the real episode and film.
    expect(records).toHaveLength(2);
    expect(records.filter((r) => r.data.title === 'Dark: Season 1: Secrets (Episode 1)')).toHaveLength(1);
    expect(records[0]).toMatchObject({
      type: 'media.play_event',
      occurredAt: '2024-03-01T20:15:00.000Z',
      data: {
        source: 'netflix',
        playedAt: '2024-03-01T20:15:00.000Z',
        durationMs: (42 * 60 + 10) * 1000,
        title: 'Dark: Season 1: Secrets (Episode 1)',
        kind: 'episode',
        series: 'Dark',
        season: 1,
        episode: 1,
        supplemental: false,
        device: 'Chrome PC (Cadmium)',
        profile: 'Ana',
      },
    });
    expect(records[1]!.data.kind).toBe('film');
    // Each viewing names the profile that watched: one account, several people.
    expect(records.map((r) => r.data.profile)).toEqual(['Ana', 'Ben']);
    // What the Personal Server accepts: the catalog's media.play_event shape, strictly.
    for (const r of records) expect(() => validateRecord(r.type, r.data)).not.toThrow();
    expect(records[1]!.data).toMatchObject({ title: 'Movie, With Comma', durationMs: 3723_000 });
  });

  it('gives the same external ids on a re-upload, so nothing is duplicated', async () => {
    const ids = async () =>
      (await collect(parseNetflixViewingActivity(chunked(file, 64)))).flatMap((i) =>
        'record' in i ? [i.record.externalId] : [],
      );
    const first = await ids();
    expect(new Set(first).size).toBe(2);
    expect(await ids()).toEqual(first);
  });

  it("imports the two-column Title,Date file of 'Download all', stable across re-uploads", async () => {
    const simple =
      'Title,Date\r\n' +
      '"Dark: Season 1: Secrets (Episode 1)",3/1/24\r\n' +
      '"Movie, With Comma",12/31/2023\r\n' +
      'Broken,13/45/24\r\n';
    const items = await collect(parseNetflixViewingActivity(chunked(simple, 5)));
    const records = items.flatMap((i) => ('record' in i ? [i.record] : []));
    expect(items.filter((i) => 'problem' in i).map((i) => i.line)).toEqual([4]);
    expect(records.map((r) => [r.data.title, r.data.playedAt, r.data.kind])).toEqual([
      ['Dark: Season 1: Secrets (Episode 1)', '2024-03-01T00:00:00.000Z', 'episode'],
      ['Movie, With Comma', '2023-12-31T00:00:00.000Z', 'film'],
    ]);
    for (const r of records) expect(() => validateRecord(r.type, r.data)).not.toThrow();
    const again = await collect(parseNetflixViewingActivity(chunked(simple, 64)));
    expect(again.flatMap((i) => ('record' in i ? [i.record.externalId] : []))).toEqual(
      records.map((r) => r.externalId),
    );
  });

  it('refuses a file that is not a ViewingActivity.csv', async () => {
    await expect(collect(parseNetflixViewingActivity(chunked('name,when\nx,y\n', 8)))).rejects.toThrow(
      /missing column\(s\) "Profile Name", "Start Time", "Duration", "Title"/,
    );
  });
});
