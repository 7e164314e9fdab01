-- CreateTable
CREATE TABLE "token_revocation_outbox" (
    "event_id" UUID NOT NULL,
    "org_id" UUID NOT NULL,
    "kind" INTEGER NOT NULL,
    "subject_id" TEXT NOT NULL,
    "revoked_at" TIMESTAMPTZ(3) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "token_revocation_outbox_pkey" PRIMARY KEY ("event_id")
);

-- CreateIndex
CREATE INDEX "token_revocation_outbox_created_at_idx" ON "token_revocation_outbox"("created_at");
