-- DropIndex
DROP INDEX "audit_entries_org_id_user_id_occurred_at_seq_idx";

-- CreateIndex
CREATE INDEX "audit_entries_user_id_occurred_at_seq_idx" ON "audit_entries"("user_id", "occurred_at", "seq");
