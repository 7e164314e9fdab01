-- CreateEnum
CREATE TYPE "auth_type" AS ENUM ('oauth2', 'api_key');

-- CreateEnum
CREATE TYPE "connect_session_status" AS ENUM ('pending', 'authorizing', 'completed', 'failed');

-- CreateEnum
CREATE TYPE "grant_status" AS ENUM ('active', 'revoked');

-- AlterTable
ALTER TABLE "connections" ADD COLUMN     "access_expires_at" TIMESTAMPTZ(3),
ADD COLUMN     "auth_type" "auth_type" NOT NULL DEFAULT 'oauth2',
ADD COLUMN     "credential_version" INTEGER NOT NULL DEFAULT 1,
ADD COLUMN     "deleted_at" TIMESTAMPTZ(3),
ADD COLUMN     "source_scopes" TEXT[] DEFAULT ARRAY[]::TEXT[],
ALTER COLUMN "wrapped_data_key" DROP NOT NULL,
ALTER COLUMN "credential_ciphertext" DROP NOT NULL;

-- CreateTable
CREATE TABLE "connect_sessions" (
    "id" UUID NOT NULL,
    "token_hash" BYTEA NOT NULL,
    "org_id" UUID NOT NULL,
    "application_id" UUID NOT NULL,
    "application_name" TEXT NOT NULL,
    "integration" TEXT NOT NULL,
    "scopes" TEXT[],
    "callback_url" TEXT NOT NULL,
    "app_state" TEXT NOT NULL DEFAULT '',
    "status" "connect_session_status" NOT NULL DEFAULT 'pending',
    "user_id" UUID,
    "oauth_state_hash" BYTEA,
    "code_verifier_ciphertext" BYTEA,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(3),
    "connection_id" UUID,

    CONSTRAINT "connect_sessions_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "grants" (
    "id" UUID NOT NULL,
    "org_id" UUID NOT NULL,
    "application_id" UUID NOT NULL,
    "user_id" UUID NOT NULL,
    "connection_id" UUID NOT NULL,
    "scopes" TEXT[],
    "status" "grant_status" NOT NULL DEFAULT 'active',
    "revision" INTEGER NOT NULL DEFAULT 1,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,
    "revoked_at" TIMESTAMPTZ(3),

    CONSTRAINT "grants_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "connect_sessions_token_hash_key" ON "connect_sessions"("token_hash");

-- CreateIndex
CREATE UNIQUE INDEX "connect_sessions_oauth_state_hash_key" ON "connect_sessions"("oauth_state_hash");

-- CreateIndex
CREATE INDEX "connect_sessions_expires_at_idx" ON "connect_sessions"("expires_at");

-- CreateIndex
CREATE INDEX "grants_connection_id_idx" ON "grants"("connection_id");

-- CreateIndex
CREATE UNIQUE INDEX "grants_application_id_connection_id_key" ON "grants"("application_id", "connection_id");

-- AddForeignKey
ALTER TABLE "grants" ADD CONSTRAINT "grants_connection_id_fkey" FOREIGN KEY ("connection_id") REFERENCES "connections"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
