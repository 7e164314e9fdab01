import {
  GetSyncStateRequestSchema,
  GetSyncStateResponseSchema,
  ImportRecordsRequestSchema,
  ImportRecordsResponseSchema,
  NotifyWebhookRequestSchema,
  NotifyWebhookResponseSchema,
  RequestSyncRequestSchema,
  RequestSyncResponseSchema,
} from '../gen/contextgateway/sync/v1/sync_pb.js';
import { defineRpc } from './descriptors.js';
import { check } from './validation.js';

/** Most records one import batch carries (the Personal Server's write limit). */
export const MAX_IMPORT_BATCH = 500;

/** sync-worker's request/reply contracts (`sync.v1.*`); its jobs arrive on SYNC_JOBS. */
export const syncRpc = {
  /** gateway: `GET /v1/connections/{id}/sync`, after its grant check. */
  getState: defineRpc({
    subject: 'sync.v1.get_state',
    callers: ['gateway'],
    request: GetSyncStateRequestSchema,
    response: GetSyncStateResponseSchema,
    validate: (m) => check.uuid(m.connectionId, 'connectionId'),
  }),
  /** gateway: one batch of an uploaded export (Netflix), already parsed and validated row by row. */
  importRecords: defineRpc({
    subject: 'sync.v1.import_records',
    callers: ['gateway'],
    request: ImportRecordsRequestSchema,
    response: ImportRecordsResponseSchema,
    timeoutMs: 15_000,
    validate: (m) => [
      ...check.uuid(m.connectionId, 'connectionId'),
      ...check.uuid(m.userId, 'userId'),
      ...check.nonEmpty(m.integration, 'integration'),
      ...(m.records.length === 0 || m.records.length > MAX_IMPORT_BATCH
        ? [{ path: 'records', message: `must hold 1..${MAX_IMPORT_BATCH} records` }]
        : []),
      ...m.records.flatMap((r, i) => [
        ...check.nonEmpty(r.type, `records[${i}].type`),
        ...check.nonEmpty(r.externalId, `records[${i}].externalId`),
        ...check.maxLength(r.externalId, 512, `records[${i}].externalId`),
      ]),
    ],
  }),
  /** gateway: `POST /v1/connections/{id}/sync` (sync now), after its grant check. */
  requestSync: defineRpc({
    subject: 'sync.v1.request_sync',
    callers: ['gateway'],
    request: RequestSyncRequestSchema,
    response: RequestSyncResponseSchema,
    validate: (m) => [...check.uuid(m.connectionId, 'connectionId'), ...check.enumSet(m.reason, 'reason')],
  }),
  /** gateway: a webhook delivery whose signature it verified. */
  notifyWebhook: defineRpc({
    subject: 'sync.v1.notify_webhook',
    callers: ['gateway'],
    request: NotifyWebhookRequestSchema,
    response: NotifyWebhookResponseSchema,
    validate: (m) => [
      ...check.nonEmpty(m.integration, 'integration'),
      ...check.nonEmpty(m.deliveryId, 'deliveryId'),
      ...check.maxLength(m.deliveryId, 200, 'deliveryId'),
      ...(m.accountIds.length > 100 ? [{ path: 'accountIds', message: 'at most 100' }] : []),
    ],
  }),
} as const;
