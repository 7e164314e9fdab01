// Test support: real SoftHSM2 tokens for the PKCS#11 provider's tests (never used at run time).
export * from './soft-hsm.js';
