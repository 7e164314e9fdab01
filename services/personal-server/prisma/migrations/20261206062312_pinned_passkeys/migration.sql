-- AlterTable
ALTER TABLE "grants" ADD COLUMN     "consent_nonce" TEXT;

-- AlterTable
ALTER TABLE "personal_servers" ADD COLUMN     "passkeys_pinned_at" TIMESTAMPTZ(3);

-- CreateTable
CREATE TABLE "pinned_passkeys" (
    "user_id" UUID NOT NULL,
    "credential_id" TEXT NOT NULL,
    "public_key" BYTEA NOT NULL,
    "seal" BYTEA NOT NULL,
    "pinned_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "pinned_passkeys_pkey" PRIMARY KEY ("user_id","credential_id")
);

-- CreateTable
CREATE TABLE "spent_passkey_nonces" (
    "nonce" TEXT NOT NULL,
    "user_id" UUID NOT NULL,
    "subject" TEXT NOT NULL,
    "spent_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "spent_passkey_nonces_pkey" PRIMARY KEY ("nonce")
);

-- AddForeignKey
ALTER TABLE "pinned_passkeys" ADD CONSTRAINT "pinned_passkeys_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "personal_servers"("user_id") ON DELETE CASCADE ON UPDATE CASCADE;
