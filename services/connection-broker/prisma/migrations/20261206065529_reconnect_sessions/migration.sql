-- AlterTable
ALTER TABLE "connect_sessions" ADD COLUMN     "reconnect_connection_id" UUID;
