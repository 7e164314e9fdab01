-- AlterTable
ALTER TABLE "policy_rules" ADD COLUMN     "approval_required" BOOLEAN NOT NULL DEFAULT false;
