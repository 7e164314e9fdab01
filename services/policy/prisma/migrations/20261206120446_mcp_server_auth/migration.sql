-- AlterTable
ALTER TABLE "mcp_servers" ADD COLUMN     "auth" TEXT NOT NULL DEFAULT 'connection';
