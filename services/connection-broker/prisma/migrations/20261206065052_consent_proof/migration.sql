-- AlterTable
ALTER TABLE "connect_sessions" ADD COLUMN     "consent_assertion" TEXT,
ADD COLUMN     "consent_nonce" TEXT;
