-- DropIndex
DROP INDEX "records_personal_server_id_type_updated_at_idx";

-- AlterTable
ALTER TABLE "records" ADD COLUMN     "version" BIGINT NOT NULL;

-- CreateTable
CREATE TABLE "connections" (
    "id" UUID NOT NULL,
    "personal_server_id" UUID NOT NULL,
    "user_id" UUID NOT NULL,
    "integration" TEXT NOT NULL,
    "data_key_id" UUID NOT NULL,
    "last_version" BIGINT NOT NULL DEFAULT 0,
    "synced_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "connections_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "grants" (
    "id" UUID NOT NULL,
    "connection_id" UUID NOT NULL,
    "org_id" UUID NOT NULL,
    "application_id" UUID NOT NULL,
    "user_id" UUID NOT NULL,
    "scopes" TEXT[],
    "types" TEXT[],
    "state" TEXT NOT NULL,
    "revoked_at" TIMESTAMPTZ(3),
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "grants_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "connections_personal_server_id_idx" ON "connections"("personal_server_id");

-- CreateIndex
CREATE UNIQUE INDEX "grants_connection_id_application_id_key" ON "grants"("connection_id", "application_id");

-- CreateIndex
CREATE INDEX "records_connection_id_type_version_idx" ON "records"("connection_id", "type", "version");

-- CreateIndex
CREATE INDEX "records_connection_id_version_idx" ON "records"("connection_id", "version");

-- AddForeignKey
ALTER TABLE "connections" ADD CONSTRAINT "connections_personal_server_id_fkey" FOREIGN KEY ("personal_server_id") REFERENCES "personal_servers"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "grants" ADD CONSTRAINT "grants_connection_id_fkey" FOREIGN KEY ("connection_id") REFERENCES "connections"("id") ON DELETE CASCADE ON UPDATE CASCADE;
