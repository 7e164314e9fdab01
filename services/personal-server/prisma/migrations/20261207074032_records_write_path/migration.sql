-- The sync write path's per-row costs (docs/perf/README.md, "The sync write path", fifth pass).
--
-- 1. No foreign key from records to personal_servers. Postgres checked it row by row (a
--    lookup in personal_servers per inserted record: about a fifth of its CPU per record).
--    The write path copies personal_server_id from the connection row it holds locked, and
--    connections keep their own key to personal_servers. What the key's ON DELETE CASCADE
--    gave (a deleted personal server takes its records along) now goes through the
--    connection: deleting a connection, by hand or by that server's cascade, deletes its
--    records (deleteCascade in the service does it first, so there it finds none).
-- DropForeignKey
ALTER TABLE "records" DROP CONSTRAINT "records_personal_server_id_fkey";

-- The schema the migration runs in (each environment and test has its own), fixed here so a
-- delete from a session with another search_path still finds this schema's records.
CREATE FUNCTION "records_follow_connection"() RETURNS trigger LANGUAGE plpgsql
  SET search_path FROM CURRENT AS $$
BEGIN
  DELETE FROM "records" WHERE "connection_id" = OLD."id";
  RETURN OLD;
END
$$;

CREATE TRIGGER "connections_delete_records" AFTER DELETE ON "connections"
  FOR EACH ROW EXECUTE FUNCTION "records_follow_connection"();

-- 2. Rows written by COPY name no updated_at: each takes Postgres's clock as it is written,
--    as the INSERTs' clock_timestamp() does.
-- AlterTable
ALTER TABLE "records" ALTER COLUMN "updated_at" SET DEFAULT clock_timestamp();
