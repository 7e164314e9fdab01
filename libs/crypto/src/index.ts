/**
 * @context-gateway/crypto — envelope encryption for connection credentials and Personal
 * Server records.
 *
 * Threat model, briefly:
 * - Data keys (one per connection) encrypt data with AES-256-GCM. KEKs, held by a
 *   KeyProvider, encrypt the data keys. A database dump, backup or SQL-level attacker sees
 *   only ciphertext and wrapped keys. The local provider keeps KEKs in a 0600 file, so it
 *   protects against database-only compromise, not against root on the host; Vault
 *   transit / KMS (same KeyProvider interface) move the KEK off the host.
 * - Associated data binds ownership: the wrap binds the owner context (org, user,
 *   connection, ...) and KEK version; record ciphertexts bind per-record AAD (record id,
 *   type, ...). Moving or copying a row to another owner or record → decryption_failed.
 * - Rotation: a new KEK version wraps new keys; old versions keep unwrapping; `rewrap`
 *   moves stored keys to the current version (data is never re-encrypted); removing an
 *   old version afterwards makes anything left under it unrecoverable.
 * - Crypto-shredding: deleting a connection deletes its wrapped key and `shred`s the
 *   cached copy, making its ciphertexts (including those in backups) unreadable once
 *   caches expire.
 * - Not covered: a process that legitimately holds a data key can read that owner's data
 *   (the seeds' administrator-blind target needs client-held keys, not this module).
 */
export * from './data-key.js';
export * from './data-key-cache.js';
export * from './data-key-store.js';
export * from './encryption-context.js';
export * from './envelope-cipher.js';
export * from './key-provider.js';
export * from './key-store.js';
export * from './local-key-provider.js';
export * from './observed-key-provider.js';
export * from './passkey-statement.js';
export * from './pkcs11/pkcs11-key-provider.js';
export * from './pkcs11/pkcs11-signer.js';
export * from './signer.js';
export * from './wrapped-key.js';
