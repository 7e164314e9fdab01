-- #12: connections' wrapped data keys leave the database. New rows name their key in the
-- key store (DATA_KEY_DIR) by id; existing rows keep wrapped_data_key until the broker's
-- next start moves each key into the store, sets data_key_id and nulls wrapped_data_key.
-- AlterTable
ALTER TABLE "connections" ADD COLUMN     "data_key_id" UUID;
