-- CreateTable
CREATE TABLE "mcp_approvals" (
    "id" UUID NOT NULL,
    "org_id" UUID NOT NULL,
    "application_id" UUID NOT NULL,
    "user_id" UUID NOT NULL,
    "capability" TEXT NOT NULL,
    "arguments_hash" TEXT NOT NULL,
    "arguments" TEXT NOT NULL,
    "tool" TEXT NOT NULL,
    "nonce" TEXT NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'pending',
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    "decided_at" TIMESTAMPTZ(3),
    "consumed_at" TIMESTAMPTZ(3),
    "signed_by" TEXT,

    CONSTRAINT "mcp_approvals_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "mcp_approvals_org_id_application_id_user_id_capability_argu_idx" ON "mcp_approvals"("org_id", "application_id", "user_id", "capability", "arguments_hash");

-- CreateIndex
CREATE INDEX "mcp_approvals_expires_at_idx" ON "mcp_approvals"("expires_at");
