/**
 * Server settings for every connection of a shard's pool (runService's `databaseSettings`).
 *
 * `random_page_cost`: Postgres's default (4) prices a random page read as four sequential ones,
 * a disk's ratio. A shard's tables live in shared buffers, and at that price the planner reads a
 * small `grants`, `connections` or `personal_servers` (a few pages: a new deployment, the
 * benchmarks) by a sequential scan and a hash join for the query path's grant lookup, where the
 * three unique-index probes it uses on larger tables cost the backend less CPU
 * (docs/perf/README.md, "The page statement's grant lookup by index"). 1.1 makes those probes the
 * cheaper plan at any table size; the writes' statements already use their indexes.
 */
export const DATABASE_SETTINGS: Readonly<Record<string, string>> = { random_page_cost: '1.1' };
