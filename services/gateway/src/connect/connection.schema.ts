import { timestampDate } from '@bufbuild/protobuf/wkt';
import { type Connection, ConnectionStatus } from '@context-gateway/proto';
import { z } from 'zod';

const STATUS_NAMES: Record<number, 'active' | 'needs_reauth' | 'revoked'> = {
  [ConnectionStatus.ACTIVE]: 'active',
  [ConnectionStatus.NEEDS_REAUTH]: 'needs_reauth',
  [ConnectionStatus.REVOKED]: 'revoked',
};

/** A connection as the HTTP API shows it (to the app holding a grant, or to its person). */
export const connectionSchema = z.object({
  id: z.string(),
  integration: z.string(),
  status: z.enum(['active', 'needs_reauth', 'revoked']),
  scopes: z.array(z.string()).describe("The scopes your application's grant covers."),
  createdAt: z.string(),
});

export function connectionJson(connection: Connection): z.infer<typeof connectionSchema> {
  return {
    id: connection.id,
    integration: connection.integration,
    status: STATUS_NAMES[connection.status] ?? 'revoked',
    scopes: connection.scopes,
    createdAt: connection.createdAt ? timestampDate(connection.createdAt).toISOString() : '',
  };
}
