-- CreateTable
CREATE TABLE "policy_revisions" (
    "org_id" UUID NOT NULL,
    "revision" BIGINT NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "policy_revisions_pkey" PRIMARY KEY ("org_id")
);
