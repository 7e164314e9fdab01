-- CreateTable
CREATE TABLE "policy_rules" (
    "id" UUID NOT NULL,
    "org_id" UUID,
    "layer" TEXT NOT NULL,
    "subject" TEXT NOT NULL,
    "effect" TEXT NOT NULL,
    "integration" TEXT,
    "capability" TEXT,
    "resources" TEXT[],
    "application_id" UUID,
    "description" TEXT NOT NULL DEFAULT '',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "policy_rules_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "org_integrations" (
    "org_id" UUID NOT NULL,
    "integration" TEXT NOT NULL,

    CONSTRAINT "org_integrations_pkey" PRIMARY KEY ("org_id","integration")
);

-- CreateTable
CREATE TABLE "applications" (
    "id" UUID NOT NULL,
    "org_id" UUID NOT NULL,
    "integrations" TEXT[],
    "scopes" TEXT[],
    "active" BOOLEAN NOT NULL,
    "revision" BIGINT NOT NULL,

    CONSTRAINT "applications_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "grants" (
    "id" UUID NOT NULL,
    "org_id" UUID NOT NULL,
    "application_id" UUID NOT NULL,
    "user_id" TEXT NOT NULL,
    "scopes" TEXT[],
    "active" BOOLEAN NOT NULL,
    "revision" BIGINT NOT NULL,

    CONSTRAINT "grants_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "control_cursor" (
    "name" TEXT NOT NULL,
    "seq" BIGINT NOT NULL,

    CONSTRAINT "control_cursor_pkey" PRIMARY KEY ("name")
);

-- CreateIndex
CREATE INDEX "policy_rules_org_id_idx" ON "policy_rules"("org_id");

-- CreateIndex
CREATE INDEX "policy_rules_layer_subject_idx" ON "policy_rules"("layer", "subject");

-- CreateIndex
CREATE INDEX "applications_org_id_idx" ON "applications"("org_id");

-- CreateIndex
CREATE INDEX "grants_org_id_idx" ON "grants"("org_id");

-- CreateIndex
CREATE INDEX "grants_user_id_idx" ON "grants"("user_id");
