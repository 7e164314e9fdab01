import { describe, expect, it } from '@jest/globals';

import { tokenIsFor } from './mcp-server-view.js';

describe('tokenIsFor', () => {
  const oauth = (url: string) => ({ auth: 'mcp_oauth' as const, url });

  it('sends a server-bound token only to the server (or a path under) it was issued for', () => {
    expect(tokenIsFor(oauth('https://notes.example/mcp'), 'https://notes.example/mcp')).toBe(true);
    expect(tokenIsFor(oauth('https://notes.example/mcp/'), 'https://notes.example/mcp')).toBe(true);
    expect(tokenIsFor(oauth('https://notes.example/mcp/v2'), 'https://notes.example/mcp')).toBe(true);
    expect(tokenIsFor(oauth('https://notes.example/mcp'), 'https://notes.example/')).toBe(true);
  });

  it('refuses another origin, a sibling path, a prefix that is not a path segment, and no resource', () => {
    expect(tokenIsFor(oauth('https://evil.example/mcp'), 'https://notes.example/mcp')).toBe(false);
    expect(tokenIsFor(oauth('http://notes.example/mcp'), 'https://notes.example/mcp')).toBe(false);
    expect(tokenIsFor(oauth('https://notes.example:8443/mcp'), 'https://notes.example/mcp')).toBe(false);
    expect(tokenIsFor(oauth('https://notes.example/other'), 'https://notes.example/mcp')).toBe(false);
    expect(tokenIsFor(oauth('https://notes.example/mcp-admin'), 'https://notes.example/mcp')).toBe(false);
    expect(tokenIsFor(oauth('https://notes.example/mcp'), '')).toBe(false);
  });

  it("leaves a catalog connection's token to its source (not bound to the MCP server's URL)", () => {
    expect(tokenIsFor({ auth: 'connection', url: 'https://mcp.example/' }, 'https://api.github.com')).toBe(true);
  });
});
