import { create } from '@bufbuild/protobuf';
import { McpVirtualServerSchema } from '@context-gateway/proto';
import { describe, expect, it } from '@jest/globals';

import { selectionKey, selectionOf, virtualServerView } from './mcp-virtual-server.js';

const views = new Map(
  [
    create(McpVirtualServerSchema, {
      name: 'triage',
      description: 'Read-only triage',
      integrations: ['jira'],
      tools: ['github:list_repos', 'github:create_issue'],
    }),
  ].map((wire) => [wire.name, virtualServerView(wire)]),
);

describe('selectionOf', () => {
  it("offers a whole integration's tools, resources and prompts, and only the chosen tools of another", () => {
    const triage = selectionOf(views, 'triage');
    expect(triage).toMatchObject({ name: 'triage', description: 'Read-only triage' });
    expect(triage.offersTool('jira', 'anything')).toBe(true);
    expect(triage.offersWhole('jira')).toBe(true);
    expect(triage.offersTool('github', 'list_repos')).toBe(true);
    expect(triage.offersTool('github', 'delete_repo')).toBe(false);
    // A tool named like another integration's capability is still matched on both parts.
    expect(triage.offersTool('github', 'jira:x')).toBe(false);
    expect(triage.offersServer('github')).toBe(true);
    // Single tools bring no resources or prompts of their integration.
    expect(triage.offersWhole('github')).toBe(false);
    expect(triage.offersServer('slack')).toBe(false);
    expect(triage.offersTool('slack', 'send_message')).toBe(false);
  });

  it('offers everything at /mcp, and nothing for a name the view does not have', () => {
    const all = selectionOf(views, undefined);
    expect(all.name).toBeUndefined();
    expect(all.offersTool('slack', 'send_message') && all.offersWhole('slack') && all.offersServer('slack')).toBe(true);
    const gone = selectionOf(views, 'deleted');
    expect(gone.name).toBe('deleted');
    for (const offers of [gone.offersServer('jira'), gone.offersTool('jira', 'x'), gone.offersWhole('jira')])
      expect(offers).toBe(false);
  });
});

describe('selectionKey', () => {
  it('is equal exactly when two selections are, whatever their order', () => {
    const view = (integrations: string[], tools: string[]) =>
      virtualServerView(create(McpVirtualServerSchema, { name: 'triage', integrations, tools }));
    const key = selectionKey(view(['jira'], ['github:list_repos', 'github:create_issue']));
    expect(selectionKey(view(['jira'], ['github:create_issue', 'github:list_repos']))).toBe(key);
    expect(selectionKey(view(['jira'], ['github:list_repos']))).not.toBe(key);
    // The same names as a whole integration or as a single tool are different selections.
    expect(selectionKey(view(['github'], []))).not.toBe(selectionKey(view([], ['github'])));
  });
});
