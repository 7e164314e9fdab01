-- CreateTable
CREATE TABLE "webhook_endpoints" (
    "application_id" UUID NOT NULL,
    "org_id" UUID NOT NULL,
    "url" TEXT NOT NULL,
    "secret_wrapped" BYTEA NOT NULL,
    "secret_created_at" TIMESTAMPTZ(3) NOT NULL,
    "previous_secret_wrapped" BYTEA,
    "previous_secret_expires_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "webhook_endpoints_pkey" PRIMARY KEY ("application_id")
);

-- CreateTable
CREATE TABLE "webhook_messages" (
    "id" UUID NOT NULL,
    "seq" BIGSERIAL NOT NULL,
    "application_id" UUID NOT NULL,
    "org_id" UUID NOT NULL,
    "connection_id" UUID,
    "type" TEXT NOT NULL,
    "payload" BYTEA NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'pending',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "next_attempt_at" TIMESTAMPTZ(3) NOT NULL,
    "last_status" INTEGER,
    "last_error" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    "delivered_at" TIMESTAMPTZ(3),

    CONSTRAINT "webhook_messages_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "webhook_endpoints_org_id_idx" ON "webhook_endpoints"("org_id");

-- CreateIndex
CREATE UNIQUE INDEX "webhook_messages_seq_key" ON "webhook_messages"("seq");

-- CreateIndex
CREATE INDEX "webhook_messages_status_next_attempt_at_idx" ON "webhook_messages"("status", "next_attempt_at");

-- CreateIndex
CREATE INDEX "webhook_messages_application_id_seq_idx" ON "webhook_messages"("application_id", "seq");
