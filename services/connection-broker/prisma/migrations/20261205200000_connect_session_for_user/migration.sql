-- AlterTable: a connect link made for one person (the app acted with their access token).
ALTER TABLE "connect_sessions" ADD COLUMN "for_user_id" UUID;
