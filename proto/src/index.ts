export * from './catalog/audit.js';
export * from './catalog/broker.js';
export * from './catalog/descriptors.js';
export * from './catalog/identity.js';
export * from './catalog/personal-server.js';
export * from './catalog/policy.js';
export * from './catalog/rpc.js';
export * from './catalog/streams.js';
export * from './catalog/sync.js';
export * from './catalog/validation.js';
// Not brandFrozen: only this package's validators make a Validated message.
export { type Validated, validateEvent, type ValidationResult } from './catalog/validated.js';
export * from './gen/contextgateway/audit/v1/audit_pb.js';
export * from './gen/contextgateway/broker/v1/broker_pb.js';
export * from './gen/contextgateway/common/v1/error_pb.js';
export * from './gen/contextgateway/control/v1/control_pb.js';
export * from './gen/contextgateway/health/v1/health_pb.js';
export * from './gen/contextgateway/identity/v1/identity_pb.js';
export * from './gen/contextgateway/personalserver/v1/personal_server_pb.js';
export * from './gen/contextgateway/policy/v1/policy_pb.js';
export * from './gen/contextgateway/sync/v1/sync_pb.js';
export * from './services.js';
export {
  int64VarintSize,
  lengthDelimitedSize,
  type Tag,
  timestampFieldSize,
  varintSize,
  writeInt64Varint,
  writeStringField,
  writeStringFieldUnmeasured,
  writeTag,
  writeTimestampField,
  writeVarint,
  writeVarint64,
} from './wire.js';
