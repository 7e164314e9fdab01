-- AlterTable
ALTER TABLE "applications" ADD COLUMN     "registration_token_id" UUID;

-- CreateTable
CREATE TABLE "oauth_registration_tokens" (
    "id" UUID NOT NULL,
    "org_id" UUID NOT NULL,
    "token_hash" TEXT NOT NULL,
    "created_by" TEXT NOT NULL,
    "single_use" BOOLEAN NOT NULL,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "use_count" INTEGER NOT NULL DEFAULT 0,
    "revoked_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "oauth_registration_tokens_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "oauth_registration_tokens_token_hash_key" ON "oauth_registration_tokens"("token_hash");

-- CreateIndex
CREATE INDEX "oauth_registration_tokens_org_id_idx" ON "oauth_registration_tokens"("org_id");

-- AddForeignKey
ALTER TABLE "oauth_registration_tokens" ADD CONSTRAINT "oauth_registration_tokens_org_id_fkey" FOREIGN KEY ("org_id") REFERENCES "organizations"("id") ON DELETE CASCADE ON UPDATE CASCADE;
