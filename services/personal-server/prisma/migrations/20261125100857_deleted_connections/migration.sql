-- CreateTable
CREATE TABLE "deleted_connections" (
    "id" UUID NOT NULL,
    "deleted_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "deleted_connections_pkey" PRIMARY KEY ("id")
);
