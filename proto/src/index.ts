export * from './services.js';
export * from './catalog/descriptors.js';
export * from './catalog/rpc.js';
export * from './catalog/streams.js';
export * from './catalog/validation.js';
export * from './gen/contextgateway/common/v1/error_pb.js';
export * from './gen/contextgateway/health/v1/health_pb.js';
export * from './gen/contextgateway/sync/v1/sync_pb.js';
