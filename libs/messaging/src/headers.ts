/**
 * Headers every message on our bus may carry. W3C trace context (`traceparent`,
 * `tracestate`) travels too, written by libs/observability's propagator.
 */
export const Header = {
  /** `ok` or `error` on replies; an error reply's body is a contextgateway.common.v1.ErrorReply. */
  status: 'cg-status',
  /** Absolute deadline, epoch milliseconds: work that cannot finish by then is pointless. */
  deadline: 'cg-deadline',
  /** The edge request that caused this message, for log correlation across services. */
  requestId: 'cg-request-id',
} as const;

export const ReplyStatus = { ok: 'ok', error: 'error' } as const;
