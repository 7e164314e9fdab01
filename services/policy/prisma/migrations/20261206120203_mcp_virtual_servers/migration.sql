-- CreateTable
CREATE TABLE "mcp_virtual_servers" (
    "org_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "integrations" TEXT[],
    "tools" TEXT[],
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "mcp_virtual_servers_pkey" PRIMARY KEY ("org_id","name")
);
