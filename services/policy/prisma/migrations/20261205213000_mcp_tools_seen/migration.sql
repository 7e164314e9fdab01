-- AlterTable
ALTER TABLE "mcp_servers" ADD COLUMN     "tools_seen_json" TEXT NOT NULL DEFAULT '{}';
