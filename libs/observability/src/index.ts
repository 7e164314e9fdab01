export * from './logger.js';
export * from './nest-logger.js';
export * from './redaction.js';
export * from './request-context.js';
export * from './tracing.js';
