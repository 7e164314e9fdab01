-- DropIndex
DROP INDEX "audit_entries_org_id_occurred_at_idx";

-- AlterTable
ALTER TABLE "audit_entries" DROP COLUMN "payload",
ADD COLUMN     "action" TEXT NOT NULL,
ADD COLUMN     "application_id" TEXT,
ADD COLUMN     "capability" TEXT,
ADD COLUMN     "entry" BYTEA NOT NULL,
ADD COLUMN     "integration" TEXT,
ADD COLUMN     "outcome" TEXT NOT NULL,
ADD COLUMN     "recorded_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
ADD COLUMN     "user_id" TEXT,
ALTER COLUMN "org_id" DROP NOT NULL;

-- AlterTable
ALTER TABLE "checkpoints" DROP COLUMN "signature",
ADD COLUMN     "note" TEXT NOT NULL;

-- CreateTable
CREATE TABLE "audit_nodes" (
    "level" INTEGER NOT NULL,
    "index" BIGINT NOT NULL,
    "hash" BYTEA NOT NULL,

    CONSTRAINT "audit_nodes_pkey" PRIMARY KEY ("level","index")
);

-- CreateTable
CREATE TABLE "auditors" (
    "id" UUID NOT NULL,
    "org_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "token_hash" BYTEA NOT NULL,
    "created_by" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "revoked_at" TIMESTAMPTZ(3),

    CONSTRAINT "auditors_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "auditors_token_hash_key" ON "auditors"("token_hash");

-- CreateIndex
CREATE INDEX "auditors_org_id_idx" ON "auditors"("org_id");

-- CreateIndex
CREATE INDEX "audit_entries_org_id_occurred_at_seq_idx" ON "audit_entries"("org_id", "occurred_at", "seq");

-- CreateIndex
CREATE INDEX "audit_entries_org_id_user_id_occurred_at_seq_idx" ON "audit_entries"("org_id", "user_id", "occurred_at", "seq");
