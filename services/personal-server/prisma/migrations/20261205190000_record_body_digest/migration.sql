-- AlterTable: a keyed digest of each record's body (HMAC under the connection's data key),
-- so a sync or re-upload tells unchanged records without decrypting them. Older rows have
-- none until they are next written; they are compared by decrypting, as before.
ALTER TABLE "records" ADD COLUMN "body_digest" BYTEA;
