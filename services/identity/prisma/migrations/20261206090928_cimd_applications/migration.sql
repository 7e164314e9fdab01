-- AlterTable
ALTER TABLE "applications" ADD COLUMN     "client_metadata_url" TEXT;

-- CreateTable
CREATE TABLE "oauth_grant_applications" (
    "grant_id" TEXT NOT NULL,
    "application_id" UUID NOT NULL,
    "org_id" UUID NOT NULL,
    "account_id" UUID NOT NULL,
    "client_id" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(3),

    CONSTRAINT "oauth_grant_applications_pkey" PRIMARY KEY ("grant_id")
);

-- CreateIndex
CREATE INDEX "oauth_grant_applications_application_id_idx" ON "oauth_grant_applications"("application_id");

-- CreateIndex
CREATE INDEX "applications_client_metadata_url_idx" ON "applications"("client_metadata_url");

-- CreateIndex
CREATE UNIQUE INDEX "applications_org_id_client_metadata_url_key" ON "applications"("org_id", "client_metadata_url");

-- AddForeignKey
ALTER TABLE "oauth_grant_applications" ADD CONSTRAINT "oauth_grant_applications_application_id_fkey" FOREIGN KEY ("application_id") REFERENCES "applications"("id") ON DELETE CASCADE ON UPDATE CASCADE;
