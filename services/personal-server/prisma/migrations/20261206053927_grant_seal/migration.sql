-- Grants registered before this migration have no seal: the query path refuses them until
-- the person consents again (a seal cannot be computed in SQL; it needs the connection's key).
-- AlterTable
ALTER TABLE "grants" ADD COLUMN     "seal" BYTEA;
