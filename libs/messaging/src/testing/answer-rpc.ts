import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from '@bufbuild/protobuf';
import { AppError } from '@context-gateway/errors';
import type { RpcDescriptor } from '@context-gateway/proto';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';

import { replyHeaders } from '../headers.js';
import { encodeErrorReply } from '../rpc-codec.js';

/**
 * Answers one RPC subject the way its owning service does on the wire (protobuf in, protobuf
 * or an ErrorReply out), from `answer`. For a service's integration tests whose peer is not
 * under test: the service under test talks to a real nats-server and decodes real replies.
 * A thrown AppError goes back as that error, as the peer's would.
 */
export function answerRpc<Req extends DescMessage, Res extends DescMessage>(
  nc: NatsConnection,
  descriptor: RpcDescriptor<Req, Res>,
  answer: (request: MessageShape<Req>) => MessageInitShape<Res> | Promise<MessageInitShape<Res>>,
): Subscription {
  return nc.subscribe(descriptor.subject, {
    callback: (_error, msg) => {
      void (async () => {
        try {
          const reply = await answer(fromBinary(descriptor.request, msg.data));
          msg.respond(toBinary(descriptor.response, create(descriptor.response, reply)), { headers: replyHeaders.ok });
        } catch (error) {
          msg.respond(encodeErrorReply(AppError.from(error)), { headers: replyHeaders.error });
        }
      })();
    },
  });
}
