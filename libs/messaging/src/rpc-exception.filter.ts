import { type ArgumentsHost, Catch, type ExceptionFilter } from '@nestjs/common';
import { type Observable, throwError } from 'rxjs';

/**
 * Nest's default RPC exception filter replaces every non-RpcException with a generic
 * `{status:'error'}` object, losing our AppError's code. This one hands the original
 * error back to the transport (NatsRpcServer), which maps it to a typed error reply.
 * Installed globally by the service bootstrap; HTTP errors have their own filter.
 */
@Catch()
export class RpcErrorPassthroughFilter implements ExceptionFilter {
  catch(exception: unknown, host: ArgumentsHost): Observable<never> | void {
    if (host.getType() !== 'rpc') throw exception;
    return throwError(() => exception);
  }
}
