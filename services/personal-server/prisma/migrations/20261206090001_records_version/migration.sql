-- AlterTable
ALTER TABLE "connections" ADD COLUMN     "records_version" INTEGER NOT NULL DEFAULT 2;
