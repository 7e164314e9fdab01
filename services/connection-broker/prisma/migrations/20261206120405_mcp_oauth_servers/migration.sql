-- CreateTable
CREATE TABLE "mcp_oauth_servers" (
    "org_id" UUID NOT NULL,
    "integration" TEXT NOT NULL,
    "url" TEXT NOT NULL,
    "resource" TEXT NOT NULL,
    "resource_metadata_url" TEXT NOT NULL,
    "issuer" TEXT NOT NULL,
    "metadata" JSONB NOT NULL,
    "scopes" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "client_source" TEXT NOT NULL,
    "client_id" TEXT NOT NULL,
    "client_auth_method" TEXT NOT NULL,
    "client_secret_sealed" BYTEA,
    "resource_name" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "mcp_oauth_servers_pkey" PRIMARY KEY ("org_id","integration")
);
