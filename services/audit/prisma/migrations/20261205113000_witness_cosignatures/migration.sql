-- Witness cosignatures: a witness outside the database (C2SP tlog-witness) countersigned
-- this checkpoint, stating it is a consistent extension of every tree it saw of this log.
-- Append-only like the log: kept so a served checkpoint carries its cosignatures.
CREATE TABLE "witness_cosignatures" (
    "tree_size" BIGINT NOT NULL,
    "witness_name" TEXT NOT NULL,
    "cosignature" TEXT NOT NULL,
    "cosigned_at" TIMESTAMPTZ(3) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "witness_cosignatures_pkey" PRIMARY KEY ("tree_size", "witness_name"),
    CONSTRAINT "witness_cosignatures_tree_size_fkey" FOREIGN KEY ("tree_size") REFERENCES "checkpoints"("tree_size") ON DELETE RESTRICT ON UPDATE RESTRICT
);

CREATE INDEX "witness_cosignatures_witness_name_tree_size_idx" ON "witness_cosignatures"("witness_name", "tree_size");

CREATE TRIGGER witness_cosignatures_append_only BEFORE UPDATE OR DELETE ON witness_cosignatures
  FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER witness_cosignatures_no_truncate BEFORE TRUNCATE ON witness_cosignatures
  FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change();

REVOKE ALL ON witness_cosignatures FROM audit_writer;
GRANT SELECT, INSERT ON witness_cosignatures TO audit_writer;
