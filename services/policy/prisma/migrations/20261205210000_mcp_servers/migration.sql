-- CreateTable
CREATE TABLE "mcp_servers" (
    "org_id" UUID NOT NULL,
    "integration" TEXT NOT NULL,
    "url" TEXT NOT NULL,
    "tools_json" TEXT NOT NULL DEFAULT '[]',
    "tools_digest" TEXT NOT NULL DEFAULT '',
    "tools_read_at" TIMESTAMPTZ(3),
    "resource_arguments" JSONB NOT NULL DEFAULT '{}',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "mcp_servers_pkey" PRIMARY KEY ("org_id","integration")
);
