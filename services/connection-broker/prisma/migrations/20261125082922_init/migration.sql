-- CreateEnum
CREATE TYPE "connection_status" AS ENUM ('active', 'needs_reauth', 'revoked');

-- CreateTable
CREATE TABLE "connections" (
    "id" UUID NOT NULL,
    "org_id" UUID NOT NULL,
    "user_id" UUID NOT NULL,
    "integration" TEXT NOT NULL,
    "status" "connection_status" NOT NULL DEFAULT 'active',
    "wrapped_data_key" BYTEA NOT NULL,
    "credential_ciphertext" BYTEA NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "connections_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "connections_org_id_idx" ON "connections"("org_id");

-- CreateIndex
CREATE UNIQUE INDEX "connections_user_id_integration_key" ON "connections"("user_id", "integration");
