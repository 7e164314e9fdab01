-- AlterTable
ALTER TABLE "passkeys" ADD COLUMN     "name" VARCHAR(64);
