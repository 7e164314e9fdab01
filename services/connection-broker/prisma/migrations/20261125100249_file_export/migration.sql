-- AlterEnum
ALTER TYPE "auth_type" ADD VALUE 'file_export';
