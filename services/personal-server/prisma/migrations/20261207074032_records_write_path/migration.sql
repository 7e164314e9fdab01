-- The sync write path's per-row costs (docs/perf/README.md, "The sync write path", fifth pass).
--
-- Sync writes may be in flight while this runs. It takes records (ACCESS EXCLUSIVE), then
-- personal_servers (dropping the key) and connections (the trigger); a writer creating a
-- connection goes personal_servers -> connections -> records. So that the read path never
-- queues behind its ACCESS EXCLUSIVE request for as long as a write holds records, it gives
-- up on a lock after 3 s (55P03); that or a deadlock (40P01) rolls it back, and the runner
-- tries again a little later without recording a failure (libs/database apply-migrations).
-- SET LOCAL: the runner applies each migration in its own transaction; the setting ends
-- with it.
SET LOCAL lock_timeout = '3s';

-- 1. No foreign key from records to personal_servers. Postgres checked it row by row (a
--    lookup in personal_servers per inserted record: ~2.5-3 ms of backend CPU per 1,000
--    rows, of 11-14). The write path copies personal_server_id from the connection row it
--    holds locked, and connections keep their own key to personal_servers. What the key's
--    ON DELETE CASCADE gave (a deleted personal server takes its records along) now goes
--    through the connection: deleting a connection, by hand or by that server's cascade,
--    deletes its records (deleteCascade in the service does it first, so there it finds none).
--
--    By hand, two things differ from a foreign key. TRUNCATE fires no row trigger, so
--    `TRUNCATE personal_servers CASCADE` empties connections and grants but no longer
--    records, and `TRUNCATE connections CASCADE` leaves them too: name records as well
--    (`TRUNCATE personal_servers, records CASCADE`).
--    And nothing in the database refuses an orphan; a one-off check for records whose
--    connection is gone (expected: 0):
--      SELECT count(*) FROM records r
--       WHERE NOT EXISTS (SELECT 1 FROM connections c WHERE c.id = r.connection_id);
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
