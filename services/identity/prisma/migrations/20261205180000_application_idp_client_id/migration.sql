-- AlterTable: an application's own client id at its organization's IdP (RFC 8693 token exchange).
ALTER TABLE "applications" ADD COLUMN "idp_client_id" TEXT;
