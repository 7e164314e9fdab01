-- Rate-limit counters shared by the gateway replicas (src/http/rate-limits.ts).
-- UNLOGGED: no WAL, so an increment never waits for a flush; Postgres empties the table
-- after a crash, which forgives at most one window of requests.
-- CreateTable
CREATE UNLOGGED TABLE "rate_limits" (
    "key" VARCHAR(255) NOT NULL,
    "points" INTEGER NOT NULL DEFAULT 0,
    "expire" BIGINT,

    CONSTRAINT "rate_limits_pkey" PRIMARY KEY ("key")
);
