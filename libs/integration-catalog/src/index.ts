/**
 * @context-gateway/integration-catalog — each built-in integration declared once
 * (`integrations/<key>.json`): endpoints, scopes with the record types or action each gives,
 * and tools. The connection-broker adds environment overrides; the record catalog and
 * policy derive their scope and capability lists from it.
 */
export * from './manifest.js';
