-- CreateTable
CREATE TABLE "personal_servers" (
    "id" UUID NOT NULL,
    "user_id" UUID NOT NULL,
    "shard" INTEGER NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "personal_servers_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "records" (
    "id" UUID NOT NULL,
    "personal_server_id" UUID NOT NULL,
    "connection_id" UUID NOT NULL,
    "type" TEXT NOT NULL,
    "external_id" TEXT NOT NULL,
    "ciphertext" BYTEA NOT NULL,
    "source_updated_at" TIMESTAMPTZ(3) NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,
    "deleted_at" TIMESTAMPTZ(3),

    CONSTRAINT "records_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "personal_servers_user_id_key" ON "personal_servers"("user_id");

-- CreateIndex
CREATE INDEX "records_personal_server_id_type_updated_at_idx" ON "records"("personal_server_id", "type", "updated_at");

-- CreateIndex
CREATE UNIQUE INDEX "records_connection_id_type_external_id_key" ON "records"("connection_id", "type", "external_id");

-- AddForeignKey
ALTER TABLE "records" ADD CONSTRAINT "records_personal_server_id_fkey" FOREIGN KEY ("personal_server_id") REFERENCES "personal_servers"("id") ON DELETE CASCADE ON UPDATE CASCADE;
