import { timestampDate } from '@bufbuild/protobuf/wkt';
import { type Connection, ConnectionStatus } from '@context-gateway/proto';
import { z } from 'zod';

const STATUSES = ['active', 'needs_reauth', 'revoked', 'deleting', 'deleted'] as const;

const STATUS_NAMES: Record<number, (typeof STATUSES)[number]> = {
  [ConnectionStatus.ACTIVE]: 'active',
  [ConnectionStatus.NEEDS_REAUTH]: 'needs_reauth',
  [ConnectionStatus.REVOKED]: 'revoked',
  [ConnectionStatus.DELETING]: 'deleting',
  [ConnectionStatus.DELETED]: 'deleted',
};

/** A connection's status as the HTTP API names it. */
function connectionStatusName(status: ConnectionStatus): (typeof STATUSES)[number] {
  return STATUS_NAMES[status] ?? 'revoked';
}

/** A connection as the HTTP API shows it (to the app holding a grant, or to its person). */
export const connectionSchema = z.object({
  id: z.string(),
  integration: z.string(),
  status: z
    .enum(STATUSES)
    .describe(
      '`deleting`: its person deleted it and the Personal Server has not yet confirmed destroying its records (retried until it does); ' +
        '`deleted` once it has. Applications never see either: their grant ends with the deletion (404).',
    ),
  scopes: z.array(z.string()).describe("The scopes your application's grant covers."),
  createdAt: z.string(),
});

export function connectionJson(connection: Connection): z.infer<typeof connectionSchema> {
  return {
    id: connection.id,
    integration: connection.integration,
    status: connectionStatusName(connection.status),
    scopes: connection.scopes,
    createdAt: connection.createdAt ? timestampDate(connection.createdAt).toISOString() : '',
  };
}
