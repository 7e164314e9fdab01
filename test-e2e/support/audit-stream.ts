import { fromBinary } from '@bufbuild/protobuf';
import { type AuditEvent, AuditEventSchema, streams } from '@context-gateway/proto';
import type { NatsConnection } from '@nats-io/transport-node';

/** What is read here of the JetStream API's replies: STREAM.INFO's state, STREAM.MSG.GET's message. */
interface JsApiReply {
  state: { last_seq: number };
  message?: { data: string };
}

/** The most recent audit events on the AUDIT stream, newest first (read back through the JetStream API). */
export async function recentAuditEvents(nc: NatsConnection, count: number): Promise<AuditEvent[]> {
  const api = async (subject: string, body: object) =>
    (await nc.request(subject, JSON.stringify(body))).json<JsApiReply>();
  const info = await api(`$JS.API.STREAM.INFO.${streams.audit.name}`, {});
  const out: AuditEvent[] = [];
  for (let seq = info.state.last_seq; seq >= Math.max(1, info.state.last_seq - count); seq -= 1) {
    const { message } = await api(`$JS.API.STREAM.MSG.GET.${streams.audit.name}`, { seq });
    if (message) out.push(fromBinary(AuditEventSchema, Buffer.from(message.data, 'base64')));
  }
  return out;
}
