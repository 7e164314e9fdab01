-- CreateTable
CREATE TABLE "policy_events" (
    "id" UUID NOT NULL,
    "org_id" UUID NOT NULL,
    "revision" BIGINT NOT NULL,
    "payload" BYTEA NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    "published_at" TIMESTAMPTZ(3),

    CONSTRAINT "policy_events_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "policy_events_published_at_created_at_idx" ON "policy_events"("published_at", "created_at");

-- CreateIndex
CREATE UNIQUE INDEX "policy_events_org_id_revision_key" ON "policy_events"("org_id", "revision");
