-- CreateTable
CREATE TABLE "connection_deletions" (
    "connection_id" UUID NOT NULL,
    "user_id" UUID NOT NULL,
    "requested_at" TIMESTAMPTZ(3) NOT NULL,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "next_attempt_at" TIMESTAMPTZ(3) NOT NULL,
    "last_error" TEXT,
    "confirmed_at" TIMESTAMPTZ(3),

    CONSTRAINT "connection_deletions_pkey" PRIMARY KEY ("connection_id")
);

-- CreateIndex
CREATE INDEX "connection_deletions_confirmed_at_next_attempt_at_idx" ON "connection_deletions"("confirmed_at", "next_attempt_at");

-- AddForeignKey
ALTER TABLE "connection_deletions" ADD CONSTRAINT "connection_deletions_connection_id_fkey" FOREIGN KEY ("connection_id") REFERENCES "connections"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- Connections deleted before this outbox existed were shredded at the Personal Server best
-- effort, once: queue each again (the shard's deletion is idempotent, so a confirmed one
-- simply confirms again).
INSERT INTO "connection_deletions" ("connection_id", "user_id", "requested_at", "next_attempt_at")
SELECT "id", "user_id", "deleted_at", CURRENT_TIMESTAMP FROM "connections" WHERE "deleted_at" IS NOT NULL;
