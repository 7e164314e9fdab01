export * from './private-nats.js';
export * from './rpc-fuzz.js';
