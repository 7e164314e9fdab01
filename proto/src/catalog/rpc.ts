import { GetReadinessRequestSchema, GetReadinessResponseSchema } from '../gen/contextgateway/health/v1/health_pb.js';
import { SERVICE_NAMES, type ServiceName, SUBJECT_PREFIX } from '../services.js';
import { auditRpc } from './audit.js';
import { brokerRpc } from './broker.js';
import { defineRpc, type RpcDescriptor } from './descriptors.js';
import { identityRpc } from './identity.js';
import { personalServerRpc } from './personal-server.js';
import { policyRpc } from './policy.js';
import { syncRpc } from './sync.js';

/** `<service>.v1.health`: answered by every service; the gateway gathers them. */
const health = Object.fromEntries(
  SERVICE_NAMES.map((service) => [
    service,
    defineRpc({
      subject: `${SUBJECT_PREFIX[service]}.v1.health`,
      callers: ['gateway'],
      request: GetReadinessRequestSchema,
      response: GetReadinessResponseSchema,
      // Health answers from memory; anything slower than this is itself a finding.
      timeoutMs: 1_000,
    }),
  ]),
) as Record<ServiceName, RpcDescriptor<typeof GetReadinessRequestSchema, typeof GetReadinessResponseSchema>>;

/** The request/reply catalog, grouped by the service that answers. */
export const rpc = {
  health,
  audit: auditRpc,
  identity: identityRpc,
  policy: policyRpc,
  broker: brokerRpc,
  personalServer: personalServerRpc,
  sync: syncRpc,
} as const;

/** Every request/reply contract, for tests that must cover each subject. */
export function allRpcDescriptors(): RpcDescriptor[] {
  return [
    ...Object.values(rpc.health),
    ...Object.values(rpc.audit),
    ...Object.values(rpc.identity),
    ...Object.values(rpc.policy),
    ...Object.values(rpc.broker),
    ...Object.values(rpc.personalServer),
    ...Object.values(rpc.sync),
  ];
}
