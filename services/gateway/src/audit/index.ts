export * from './audit-recorder.js';
export * from './audit-subject.js';
export * from './audit.module.js';
export { outcomeOf } from './audit-route.interceptor.js';
