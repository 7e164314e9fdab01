-- AlterEnum
ALTER TYPE "sync_status" ADD VALUE 'needs_reauth';

-- AlterTable
ALTER TABLE "sync_states" ADD COLUMN     "integration" TEXT,
ADD COLUMN     "lease_owner" TEXT,
ADD COLUMN     "lease_until" TIMESTAMPTZ(3),
ADD COLUMN     "rerun_requested" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN     "source_account_id" TEXT;

-- CreateIndex
CREATE INDEX "sync_states_integration_source_account_id_idx" ON "sync_states"("integration", "source_account_id");
