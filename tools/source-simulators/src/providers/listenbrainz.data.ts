import { createHash } from 'node:crypto';

import { Rng, SEED_EPOCH_MS } from '../prng.js';
import type { Account, SimItem } from '../simulator-context.js';

/**
 * ListenBrainz test data: an account's listening history drawn from a small catalog of its
 * own tracks, so the same recording comes back with the same MessyBrainz id (msid). Track
 * metadata varies the way scrobblers' submissions do: with or without MusicBrainz ids,
 * a duration in ms or in seconds or none, an ISRC printed with hyphens, a multi-artist credit
 * that only ListenBrainz's own mapping splits.
 */

const HEX = '0123456789abcdef';
/** Distinct tracks per account; listens pick among them. */
const CATALOG_SIZE = 60;
const CLIENTS = ['navidrome', 'Web Scrobbler', 'Pano Scrobbler', 'BrainzPlayer', 'Rhythmbox ListenBrainz Plugin'];
const PLAYERS = ['Navidrome', 'Rhythmbox', 'foobar2000', 'VLC'];

/** A UUID (version 4 layout) drawn from `rng`: MusicBrainz ids, msids and user tokens all look like this. */
export function uuidFrom(rng: Rng): string {
  const h = rng.chars(32, HEX);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${'89ab'[rng.int(0, 3)]}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The user token an account has from the start: derived from its seed, so it is stable across runs. */
export function defaultListenBrainzToken(seed: string): string {
  const h = createHash('sha256').update(`listenbrainz-token:${seed}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const title = (rng: Rng, n: number) =>
  rng
    .words(n)
    .split(' ')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join(' ');

/** Track `k` of an account's catalog: the same on every call (its own seeded stream). */
function track(seed: string, k: number): Record<string, unknown> {
  const rng = new Rng(`${seed}:track:${k}`);
  const artists = Array.from({ length: rng.bool(0.2) ? 2 : 1 }, () => ({
    name: title(rng, rng.int(1, 2)),
    mbid: uuidFrom(rng),
  }));
  const sentIds = rng.bool(0.7);
  const recordingMbid = uuidFrom(rng);
  const releaseMbid = uuidFrom(rng);
  const lengthMs = rng.int(90, 420) * 1000 + rng.int(0, 999);
  const isrcDigits = String(rng.int(0, 9_999_999)).padStart(7, '0');
  const isrcCountry = rng.pick(['US', 'GB', 'DE', 'SE', 'FR']);
  const isrcOwner = rng.chars(3, '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ');
  const isrcKind = rng.next();
  const durationKind = rng.next();
  return {
    recording_msid: uuidFrom(rng),
    track_name: title(rng, rng.int(1, 4)),
    artist_name: artists.map((a) => a.name).join(' & '),
    release_name: rng.bool(0.85) ? title(rng, rng.int(1, 3)) : null,
    // What the scrobbler sent (unvalidated) ...
    artist_mbids: sentIds ? artists.map((a) => a.mbid) : null,
    release_mbid: sentIds ? releaseMbid : null,
    recording_mbid: sentIds ? recordingMbid : null,
    duration_ms: durationKind < 0.6 ? lengthMs : null,
    duration: durationKind >= 0.6 && durationKind < 0.8 ? Math.round(lengthMs / 1000) : null,
    isrc:
      isrcKind < 0.3
        ? `${isrcCountry}${isrcOwner}${isrcDigits.slice(0, 2)}${isrcDigits.slice(2)}`
        : isrcKind < 0.45
          ? `${isrcCountry}-${isrcOwner}-${isrcDigits.slice(0, 2)}-${isrcDigits.slice(2)}`.toLowerCase()
          : isrcKind < 0.5
            ? 'N/A'
            : null,
    submission_client: rng.pick(CLIENTS),
    media_player: rng.bool(0.5) ? rng.pick(PLAYERS) : null,
    // ... and what ListenBrainz's own MBID mapper matched (absent when it found nothing).
    mapped: rng.bool(0.8),
    mapped_recording_mbid: recordingMbid,
    mapped_release_mbid: releaseMbid,
    mapped_artists: artists.map((a) => ({ artist_mbid: a.mbid, artist_credit_name: a.name })),
  };
}

/** First listen of a seeded history (seconds); listens follow each other 40 s to 7 min apart. */
const FIRST_LISTEN_S = Math.floor(SEED_EPOCH_MS / 1000);

/** Listen `index` of `account`'s history, oldest first: later indexes are later listens. */
export function generateListen(account: Account, rng: Rng, index: number): SimItem {
  const listenedAt = FIRST_LISTEN_S + index * 240 + rng.int(0, 200);
  return {
    id: `lst_${account.id}_${String(index + 1).padStart(8, '0')}`,
    listened_at: listenedAt,
    inserted_at: listenedAt + rng.int(1, 30),
    // Seconds actually listened: documented in json.rst's additional_info table (since
    // listenbrainz-server 9b8f0e06f, 2025-11) and set by its Maloja importer; few clients send it.
    duration_played: rng.bool(0.3) ? rng.int(30, 240) : null,
    ...track(account.seed, rng.int(0, CATALOG_SIZE - 1)),
  };
}

/** A stored listen in the shape `GET /1/user/{user}/listens` returns (docs/users/json.rst). */
export function renderListen(
  account: Account,
  l: SimItem,
  quirks: { noTrackName: boolean; noAdditionalInfo: boolean },
): Record<string, unknown> {
  const present = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null));
  const mappedArtists = l.mapped_artists as { artist_mbid: string; artist_credit_name: string }[];
  const additionalInfo = present({
    artist_mbids: l.artist_mbids,
    duration_ms: l.duration_ms,
    duration: l.duration,
    duration_played: l.duration_played,
    isrc: l.isrc,
    media_player: l.media_player,
    recording_mbid: l.recording_mbid,
    recording_msid: l.recording_msid,
    release_mbid: l.release_mbid,
    submission_client: l.submission_client,
    submission_client_version: '1.0',
  });
  const trackMetadata = present({
    artist_name: l.artist_name,
    track_name: quirks.noTrackName ? null : l.track_name,
    release_name: l.release_name,
  });
  if (!quirks.noAdditionalInfo) trackMetadata.additional_info = additionalInfo;
  if (l.mapped) {
    trackMetadata.mbid_mapping = {
      // The mapping prefers the recording the scrobbler named, as ListenBrainz's does.
      recording_mbid: l.recording_mbid ?? l.mapped_recording_mbid,
      recording_name: l.track_name,
      release_mbid: l.mapped_release_mbid,
      artist_mbids: mappedArtists.map((a) => a.artist_mbid),
      artists: mappedArtists.map((a, i) => ({ ...a, join_phrase: i < mappedArtists.length - 1 ? ' & ' : '' })),
    };
  }
  return {
    inserted_at: l.inserted_at,
    listened_at: l.listened_at,
    recording_msid: l.recording_msid,
    user_name: account.login,
    track_metadata: trackMetadata,
  };
}
