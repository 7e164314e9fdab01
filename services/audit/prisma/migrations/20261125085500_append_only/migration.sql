-- Append-only, enforced twice.
--
-- 1. Triggers: no UPDATE, DELETE or TRUNCATE on the log's tables, whoever asks (the table
--    owner included). Only a superuser who disables triggers gets past this — and then
--    `pnpm audit:verify` names the first entry that no longer matches the signed log.
CREATE FUNCTION audit_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit log is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
  FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
  FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER audit_nodes_append_only BEFORE UPDATE OR DELETE ON audit_nodes
  FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER audit_nodes_no_truncate BEFORE TRUNCATE ON audit_nodes
  FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
  FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change();

-- 2. Privileges: the service's runtime queries run as `audit_writer` (SET ROLE), which can
--    read and append to the log and nothing else. Roles are cluster-wide; several schemas
--    (tests, environments) share one, so its creation tolerates a concurrent twin.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'audit_writer') THEN
    CREATE ROLE audit_writer NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;
END
$$;

DO $$
BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO audit_writer', current_schema());
  -- The login role must be allowed to SET ROLE audit_writer (a no-op for a superuser).
  EXECUTE format('GRANT audit_writer TO %I', current_user);
END
$$;

REVOKE ALL ON audit_entries, audit_nodes, checkpoints, auditors FROM audit_writer;
GRANT SELECT, INSERT ON audit_entries, audit_nodes, checkpoints TO audit_writer;
-- Auditor credentials are not part of the log: revoking one sets revoked_at.
GRANT SELECT, INSERT, UPDATE (revoked_at) ON auditors TO audit_writer;
