-- CreateEnum
CREATE TYPE "sync_status" AS ENUM ('idle', 'queued', 'running', 'failed');

-- CreateTable
CREATE TABLE "sync_states" (
    "connection_id" UUID NOT NULL,
    "state" "sync_status" NOT NULL DEFAULT 'idle',
    "cursor" JSONB,
    "last_success_at" TIMESTAMPTZ(3),
    "last_error" TEXT,
    "records_synced" BIGINT NOT NULL DEFAULT 0,
    "next_run_at" TIMESTAMPTZ(3),
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "sync_states_pkey" PRIMARY KEY ("connection_id")
);

-- CreateIndex
CREATE INDEX "sync_states_state_next_run_at_idx" ON "sync_states"("state", "next_run_at");
