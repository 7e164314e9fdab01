-- AlterTable
ALTER TABLE "sync_states" ADD COLUMN     "last_run_skipped" JSONB,
ADD COLUMN     "last_run_skipped_total" INTEGER NOT NULL DEFAULT 0;
