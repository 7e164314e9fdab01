export * from './audit.module.js';
export * from './audit-recorder.js';
export { outcomeOf } from './audit-route.interceptor.js';
export * from './audit-subject.js';
