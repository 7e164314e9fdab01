-- CreateTable
CREATE TABLE "grant_events" (
    "id" UUID NOT NULL,
    "grant_id" UUID NOT NULL,
    "revision" INTEGER NOT NULL,
    "payload" BYTEA NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "published_at" TIMESTAMPTZ(3),

    CONSTRAINT "grant_events_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "grant_events_published_at_created_at_idx" ON "grant_events"("published_at", "created_at");
