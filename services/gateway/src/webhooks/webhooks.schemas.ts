import { timestampDate } from '@bufbuild/protobuf/wkt';
import type { WebhookEndpoint, WebhookMessage } from '@context-gateway/proto';
import { z } from 'zod';

export const webhookBody = z.strictObject({
  url: z
    .string()
    .max(2_048)
    .describe('Where deliveries are POSTed: https, on a public address (the operator may allow more for development).'),
});

export const rotateBody = z.strictObject({
  overlapSeconds: z
    .number()
    .int()
    .min(60)
    .max(7 * 86_400)
    .optional()
    .describe('How long the old secret keeps signing beside the new one (default 24 hours).'),
});

export const messagesQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  cursor: z.string().max(200).optional().describe('`nextCursor` of the previous page.'),
});

export const webhookEndpointSchema = z.object({
  applicationId: z.uuid(),
  url: z.string(),
  createdAt: z.string(),
  secretCreatedAt: z.string(),
  previousSecretExpiresAt: z
    .string()
    .nullable()
    .describe('While a rotated-out secret still signs (both signatures are sent); null otherwise.'),
  secret: z
    .string()
    .optional()
    .describe('`whsec_...`, only in the answer that created it; stored wrapped by the key store.'),
});

export const webhookMessageSchema = z.object({
  id: z.uuid().describe('The `webhook-id` header: the same on every attempt and replay; de-duplicate by it.'),
  type: z.enum([
    'connection.created',
    'connection.deleted',
    'connection.needs_reauth',
    'grant.revoked',
    'sync.completed',
    'sync.failed',
  ]),
  connectionId: z.uuid().nullable(),
  status: z.enum(['pending', 'delivered', 'failed']),
  attempts: z.number().int(),
  createdAt: z.string(),
  nextAttemptAt: z.string().nullable(),
  deliveredAt: z.string().nullable(),
  lastStatus: z.number().int().nullable().describe("Your endpoint's last HTTP status (null: never answered)."),
  lastError: z.string().nullable().describe('A stable code: `timeout`, `http_503`, `address_refused`, ...'),
  payload: z.record(z.string(), z.unknown()).describe('The body as signed and sent: `{type, timestamp, data}`.'),
});

export const webhookMessagesSchema = z.object({
  messages: z.array(webhookMessageSchema),
  nextCursor: z.string().nullable(),
});

const iso = (t: { seconds: bigint; nanos: number } | undefined) =>
  t ? timestampDate(t as Parameters<typeof timestampDate>[0]).toISOString() : null;

export function toEndpoint(e: WebhookEndpoint | undefined, secret?: string): z.infer<typeof webhookEndpointSchema> {
  return {
    applicationId: e?.applicationId ?? '',
    url: e?.url ?? '',
    createdAt: iso(e?.createdAt) ?? '',
    secretCreatedAt: iso(e?.secretCreatedAt) ?? '',
    previousSecretExpiresAt: iso(e?.previousSecretExpiresAt),
    ...(secret ? { secret } : {}),
  };
}

export function toMessage(m: WebhookMessage): z.infer<typeof webhookMessageSchema> {
  return {
    id: m.id,
    type: m.type as z.infer<typeof webhookMessageSchema>['type'],
    connectionId: m.connectionId || null,
    status: m.status as z.infer<typeof webhookMessageSchema>['status'],
    attempts: m.attempts,
    createdAt: iso(m.createdAt) ?? '',
    nextAttemptAt: iso(m.nextAttemptAt),
    deliveredAt: iso(m.deliveredAt),
    lastStatus: m.lastStatus || null,
    lastError: m.lastError || null,
    payload: JSON.parse(Buffer.from(m.payloadJson).toString('utf8')) as Record<string, unknown>,
  };
}
