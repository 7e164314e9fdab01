export * from './private-nats.js';
