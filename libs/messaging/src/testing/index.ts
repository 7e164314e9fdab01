export * from './answer-rpc.js';
export * from './private-nats.js';
export * from './rpc-fuzz.js';
