import { createHash } from 'node:crypto';

import { compact } from './compact.js';
import type { NormalizedRecord } from './connector.js';

/** One CSV record and the physical line it starts on (1 = the header). */
export interface CsvRow {
  line: number;
  fields: string[];
}

/**
 * RFC 4180 CSV as a stream: quoted fields with commas, doubled quotes and line breaks,
 * CRLF or LF, a UTF-8 BOM. Memory is bounded by the longest record, not the file; a record
 * longer than `maxRecordChars` is an error rather than a way to exhaust memory.
 */
export async function* parseCsv(
  chunks: AsyncIterable<Uint8Array | string>,
  maxRecordChars = 64 * 1024,
): AsyncGenerator<CsvRow> {
  const decoder = new TextDecoder('utf-8');
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let afterQuote = false;
  let line = 1;
  let startLine = 1;
  let size = 0;
  let first = true;
  let pendingCR = false;
  let any = false;
  /** A closing quote was the chunk's last char: the next chunk says whether it was a doubled quote. */
  let pendingQuote = false;

  const take = (): CsvRow => {
    fields.push(field);
    const row = { line: startLine, fields };
    fields = [];
    field = '';
    afterQuote = false;
    size = 0;
    any = false;
    return row;
  };

  const feed = function* (text: string): Generator<CsvRow> {
    for (let i = 0; i < text.length; i++) {
      const c = text.charAt(i);
      if (first) {
        first = false;
        if (c === '\uFEFF') continue;
      }
      if (pendingCR) {
        pendingCR = false;
        if (c === '\n') continue; // the LF of a CRLF ending already counted
      }
      if (++size > maxRecordChars) throw new CsvError(startLine, `record longer than ${maxRecordChars} characters`);
      if (quoted) {
        if (c === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i++;
          } else if (i + 1 === text.length) {
            // Cannot see the next char yet: remember and decide on the next chunk.
            quoted = false;
            afterQuote = true;
            pendingQuote = true;
          } else {
            quoted = false;
            afterQuote = true;
          }
        } else {
          if (c === '\n' || (c === '\r' && text[i + 1] !== '\n')) line++;
          field += c;
        }
        continue;
      }
      if (pendingQuote) {
        pendingQuote = false;
        if (c === '"') {
          // It was a doubled quote split across chunks.
          field += '"';
          quoted = true;
          afterQuote = false;
          continue;
        }
      }
      if (c === ',') {
        fields.push(field);
        field = '';
        afterQuote = false;
        any = true;
      } else if (c === '\r' || c === '\n') {
        if (c === '\r') pendingCR = true;
        if (any || field !== '' || fields.length > 0 || afterQuote) yield take();
        else size = 0; // blank line
        line++;
        startLine = line;
      } else if (c === '"' && field === '' && !afterQuote) {
        quoted = true;
        any = true;
      } else if (afterQuote) {
        throw new CsvError(startLine, 'unexpected character after a closing quote');
      } else {
        field += c;
        any = true;
      }
    }
  };

  for await (const chunk of chunks) {
    const text = typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    yield* feed(text);
  }
  yield* feed(decoder.decode());
  if (quoted) throw new CsvError(startLine, 'a quoted field is never closed');
  if (any || field !== '' || fields.length > 0 || afterQuote) yield take();
}

/** A problem with the file's structure that stops parsing (the rows before it were read). */
export class CsvError extends Error {
  constructor(
    readonly line: number,
    readonly reason: string,
  ) {
    super(`line ${line}: ${reason}`);
  }
}

export interface RowProblem {
  line: number;
  message: string;
}

/** The columns of Netflix's ViewingActivity.csv (Account → Download your personal information). */
export const NETFLIX_COLUMNS = [
  'Profile Name',
  'Start Time',
  'Duration',
  'Attributes',
  'Title',
  'Supplemental Video Type',
  'Device Type',
  'Bookmark',
  'Latest Bookmark',
  'Country',
] as const;
const REQUIRED = ['Profile Name', 'Start Time', 'Duration', 'Title'] as const;

/** Every record type a Netflix export import writes (what `netflix`'s data scopes promise; a test checks). */
export const NETFLIX_IMPORT_PRODUCES: readonly string[] = ['media.play_event'];

export type NetflixItem = { line: number; record: NormalizedRecord } | { line: number; problem: string };

/**
 * Netflix's ViewingActivity.csv → media.play_event (kind `episode` or `film`), row by row. A bad row is reported with
 * its line number and skipped; the rest are imported. The external id is a hash of what
 * identifies a viewing (profile, start time, title), so uploading the same file again
 * upserts the same records: no duplicates.
 */
export async function* parseNetflixViewingActivity(
  chunks: AsyncIterable<Uint8Array | string>,
): AsyncGenerator<NetflixItem> {
  let index: Map<string, number> | undefined;
  let width = 0;
  let simple = false;
  for await (const row of parseCsv(chunks)) {
    if (!index) {
      const header = new Map(row.fields.map((name, i) => [name.trim(), i]));
      index = header;
      // "Download all" on the Viewing activity page gives NetflixViewingHistory.csv: Title, Date.
      simple = header.has('Title') && header.has('Date') && !header.has('Start Time');
      width = row.fields.length;
      if (simple) continue;
      const missing = REQUIRED.filter((c) => !header.has(c));
      if (missing.length)
        throw new CsvError(
          row.line,
          `not a Netflix ViewingActivity.csv (or a Title,Date viewing history): missing column(s) ${missing.map((m) => `"${m}"`).join(', ')}`,
        );
      continue;
    }
    if (row.fields.length !== width) {
      yield { line: row.line, problem: `expected ${width} fields, found ${row.fields.length}` };
      continue;
    }
    const columns = index;
    // Every row has the header's width (checked above), so a known column is always there.
    const get = (name: string) => {
      const i = columns.get(name);
      const value = i === undefined ? undefined : row.fields[i];
      return value === undefined ? '' : value.trim();
    };
    if (simple) {
      yield simpleRow(row.line, get('Title'), get('Date'));
      continue;
    }
    // Trailers, hooks, recaps (any supplemental video) play around an episode or film: they
    // are not a viewing of it, and stored as one they would duplicate the real watch (an app
    // counting plays of an episode would count the hook). So they are left out.
    if (get('Supplemental Video Type')) continue;
    const problems: string[] = [];
    const profile = get('Profile Name');
    const title = get('Title');
    const start = parseNetflixTime(get('Start Time'));
    const duration = parseDuration(get('Duration'));
    if (!profile) problems.push('"Profile Name" is empty');
    if (!title) problems.push('"Title" is empty');
    if (start === undefined)
      problems.push(`"Start Time" is not a date and time (YYYY-MM-DD HH:MM:SS): "${clip(get('Start Time'))}"`);
    if (duration === undefined) problems.push(`"Duration" is not HH:MM:SS: "${clip(get('Duration'))}"`);
    if (problems.length || start === undefined || duration === undefined) {
      yield { line: row.line, problem: problems.join('; ') };
      continue;
    }
    const externalId = createHash('sha256')
      .update(`${profile}\u0000${start}\u0000${title}`)
      .digest('base64url')
      .slice(0, 32);
    // "Show: Season 2: Episode Title" (or ": Limited Series:", ": Part 1:") is an episode; otherwise a film.
    const m =
      /^(.+?): (?:Season|Series|Part|Volume) (\d+)(?: \([^)]*\))?: (.+)$/i.exec(title) ??
      /^(.+?): (?:Limited Series|Miniseries): (.+)$/i.exec(title);
    const series = m?.[1];
    const season = m && m.length === 4 ? Number(m[2]) : undefined;
    // Netflix names many episodes "Title (Episode 3)": the number, where it says it.
    const episodeNumber = /\(Episode (\d{1,4})\)$/i.exec(title)?.[1];
    const kind = m ? 'episode' : 'film';
    yield {
      line: row.line,
      record: {
        type: 'media.play_event',
        externalId,
        occurredAt: start,
        data: compact({
          source: 'netflix',
          // Netflix's export has no ids: the title is what identifies the content.
          trackId: `netflix:${createHash('sha256').update(title).digest('base64url').slice(0, 22)}`,
          title,
          creators: [],
          kind,
          playedAt: start,
          // Time watched: Netflix's Duration is how long this viewing lasted, not the title's length.
          durationMs: duration,
          supplemental: false,
          device: get('Device Type'),
          profile,
          series,
          season,
          episode: m && episodeNumber !== undefined ? Number(episodeNumber) : undefined,
        }),
      },
    };
  }
  if (!index) throw new CsvError(1, 'the file is empty');
}

/**
 * A row of the two-column viewing history (Title, Date): a day, no time, profile, duration
 * or device. Its id is a hash of (title, day): Netflix lists a title once per day there,
 * and re-uploading the file upserts the same records.
 */
function simpleRow(line: number, title: string, date: string): NetflixItem {
  const day = parseNetflixDate(date);
  const problems: string[] = [];
  if (!title) problems.push('"Title" is empty');
  if (day === undefined) problems.push(`"Date" is not a date (M/D/YY, M/D/YYYY or YYYY-MM-DD): "${clip(date)}"`);
  if (problems.length || day === undefined) return { line, problem: problems.join('; ') };
  const m =
    /^(.+?): (?:Season|Series|Part|Volume) (\d+)(?: \([^)]*\))?: (.+)$/i.exec(title) ??
    /^(.+?): (?:Limited Series|Miniseries): (.+)$/i.exec(title);
  return {
    line,
    record: {
      type: 'media.play_event',
      externalId: createHash('sha256').update(`day\u0000${day}\u0000${title}`).digest('base64url').slice(0, 32),
      occurredAt: day,
      data: compact({
        source: 'netflix',
        trackId: `netflix:${createHash('sha256').update(title).digest('base64url').slice(0, 22)}`,
        title,
        creators: [],
        kind: m ? 'episode' : 'film',
        // The day only: midnight UTC of the date Netflix lists.
        playedAt: day,
        supplemental: false,
        series: m?.[1],
        season: m && m.length === 4 ? Number(m[2]) : undefined,
      }),
    },
  };
}

/** The viewing history's date: US M/D/YY (what the English site writes), M/D/YYYY, or ISO. */
function parseNetflixDate(value: string): string | undefined {
  const iso = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  const us = /^(\d{1,2})\/(\d{1,2})\/(\d{2}|\d{4})$/.exec(value);
  let y: number, mo: number, d: number;
  if (iso) [y, mo, d] = [+group(iso, 1), +group(iso, 2), +group(iso, 3)];
  else if (us) {
    const yy = group(us, 3);
    [y, mo, d] = [yy.length === 2 ? 2000 + +yy : +yy, +group(us, 1), +group(us, 2)];
  } else return undefined;
  const date = new Date(Date.UTC(y, mo - 1, d));
  if (date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d) return undefined;
  return date.toISOString();
}

const clip = (s: string) => (s.length > 40 ? `${s.slice(0, 40)}…` : s);

/** Netflix writes start times in UTC as `YYYY-MM-DD HH:MM:SS`. */
function parseNetflixTime(value: string): string | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$/.exec(value);
  if (!m) return undefined;
  const year = +group(m, 1);
  const month = +group(m, 2);
  const day = +group(m, 3);
  const hour = +group(m, 4);
  const minute = +group(m, 5);
  const second = +group(m, 6);
  const d = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  if (d.getUTCMonth() !== month - 1 || d.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59)
    return undefined;
  return d.toISOString();
}

function parseDuration(value: string): number | undefined {
  const m = /^(\d{1,3}):([0-5]\d):([0-5]\d)$/.exec(value);
  if (!m) return undefined;
  return ((+group(m, 1) * 60 + +group(m, 2)) * 60 + +group(m, 3)) * 1000;
}

/** A capture group the pattern always fills (none of these groups is optional). */
function group(m: RegExpExecArray, i: number): string {
  const value = m[i];
  if (value === undefined) throw new Error(`capture group ${i} did not take part in the match`);
  return value;
}
