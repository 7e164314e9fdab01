import { describe, expect, it } from '@jest/globals';

import { type AuditEntryJson, csvHeader, csvRow } from './auditor-api.schemas.js';

const entry: AuditEntryJson = {
  index: 7,
  eventId: 'e',
  occurredAt: '2026-11-25T09:00:00.000Z',
  recordedAt: '2026-11-25T09:00:00.100Z',
  orgId: 'o',
  applicationId: 'a',
  userId: 'u',
  integration: 'github',
  capability: 'github:read:repos',
  resource: 'connection:1',
  connectionId: null,
  approvalId: null,
  mcpVirtualServer: null,
  action: 'data_query',
  outcome: 'denied',
  phase: 'complete',
  intentEventId: null,
  policy: { decidedBy: 'user', reason: 'scope "repo" not granted, sorry', matchedRuleIds: ['r1', 'r2'] },
  errorCode: 'policy_denied',
  actorKind: 'api_key',
  actorId: 'k',
  operation: '=HYPERLINK("http://evil")',
  requestId: 'r',
  traceId: null,
  latencyMs: 3,
  leafHash: 'ab',
};

describe('audit CSV export', () => {
  it('has one column per header field, quotes commas and quotes, and defuses spreadsheet formulas', () => {
    const header = csvHeader().trim().split(',');
    const row = csvRow(entry);
    expect(row.endsWith('\r\n')).toBe(true);
    expect(row).toContain('"scope ""repo"" not granted, sorry"');
    expect(row).toContain(`"'=HYPERLINK(""http://evil"")"`);
    expect(row).toContain(',r1 r2,');
    // Unquoted fields split cleanly back into the header's columns.
    const fields = row
      .trim()
      .match(/("([^"]|"")*"|[^,]*)(,|$)/g)!
      .filter((f) => f !== '');
    expect(fields).toHaveLength(header.length);
  });
});
