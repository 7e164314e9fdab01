import type { RpcDescriptor } from '@context-gateway/proto';
import { MessagePattern } from '@nestjs/microservices';

export const RPC_DESCRIPTOR = 'cg:rpc';

/**
 * Marks a handler method for a catalog request/reply contract. The transport decodes and
 * validates the message with the descriptor before the method runs; the method takes the
 * typed message with `@Payload()` and, if it needs it, the RpcContext with `@Ctx()`.
 */
export function RpcHandler(descriptor: RpcDescriptor): MethodDecorator {
  return MessagePattern(descriptor.subject, { [RPC_DESCRIPTOR]: descriptor });
}
