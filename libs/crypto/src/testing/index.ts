// Test support (never used at run time): real SoftHSM2 tokens for the PKCS#11 provider's
// tests, and a software passkey authenticator for tests and scripts without a browser.
export * from './soft-authenticator.js';
export * from './soft-hsm.js';
