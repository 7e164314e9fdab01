import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { AppError } from '@context-gateway/errors';
import { ErrorReplySchema } from '@context-gateway/proto';

export function encodeErrorReply(error: AppError): Uint8Array {
  return toBinary(
    ErrorReplySchema,
    create(ErrorReplySchema, {
      code: error.code,
      message: error.message,
      problems: error.problems.map((p) => ({ path: p.path, message: p.message })),
    }),
  );
}

export function decodeErrorReply(data: Uint8Array): AppError {
  try {
    const reply = fromBinary(ErrorReplySchema, data);
    return AppError.fromWire(
      reply.code,
      reply.message,
      reply.problems.map((p) => ({ path: p.path, message: p.message })),
    );
  } catch {
    return new AppError('internal', 'A peer sent an error reply that could not be decoded');
  }
}
