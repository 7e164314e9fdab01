-- Each MCP server registration's own redirect URI and Client ID Metadata Document are named by
-- this key; null for clients made before it (they keep the shared /v1/connect/callback).
ALTER TABLE "mcp_oauth_servers" ADD COLUMN "registration_key" TEXT;

-- CreateIndex
CREATE UNIQUE INDEX "mcp_oauth_servers_registration_key_key" ON "mcp_oauth_servers"("registration_key");
