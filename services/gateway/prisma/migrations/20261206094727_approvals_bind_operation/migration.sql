-- An approval now names the MCP operation and name it approves, in its hash and its signed
-- statement. Requests stored before cannot say which operation they covered, so they are
-- dropped rather than honoured for any: they live minutes, and the agent's retry asks again.
DELETE FROM "mcp_approvals";

-- DropIndex
DROP INDEX "mcp_approvals_org_id_application_id_user_id_capability_argu_idx";

-- AlterTable
ALTER TABLE "mcp_approvals" DROP COLUMN "arguments_hash",
ADD COLUMN     "call_hash" TEXT NOT NULL,
ADD COLUMN     "method" TEXT NOT NULL,
ADD COLUMN     "name" TEXT NOT NULL;

-- CreateIndex
CREATE INDEX "mcp_approvals_org_id_application_id_user_id_call_hash_idx" ON "mcp_approvals"("org_id", "application_id", "user_id", "call_hash");
