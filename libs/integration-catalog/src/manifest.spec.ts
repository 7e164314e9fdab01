import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterEach, describe, expect, it } from '@jest/globals';

import { builtinCapabilities, dataScopes, integrationManifests, loadIntegrationManifests } from './manifest.js';

describe('integration manifests', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
  const folder = (files: Record<string, unknown>) => {
    const dir = mkdtempSync(join(tmpdir(), 'manifests-'));
    dirs.push(dir);
    for (const [name, body] of Object.entries(files)) writeFileSync(join(dir, name), JSON.stringify(body));
    return pathToFileURL(`${dir}/`);
  };
  const minimal = {
    key: 'acme',
    displayName: 'Acme',
    authType: 'api_key',
    apiBaseUrl: 'https://api.acme.example',
    apiKey: { label: 'Key', pattern: '^.+$' },
    scopes: { 'acme:read:notes': { source: [], description: 'Read your notes.', records: ['document.note'] } },
  };

  it('the built-in manifests load, each key matching its file', () => {
    const keys = integrationManifests().map((m) => m.key);
    expect(keys).toEqual(expect.arrayContaining(['demo', 'demo-keys', 'github', 'netflix', 'spotify']));
    expect(dataScopes().spotify?.['spotify:read:recently_played']).toEqual(['media.play_event']);
    expect(builtinCapabilities()).toEqual(
      expect.arrayContaining(['github:create_issue', 'github:delete_repository', 'spotify:read:playlists']),
    );
  });

  it('a data scope must name the record types it gives; an action scope must not', () => {
    expect(loadIntegrationManifests(folder({ 'acme.json': minimal }))).toHaveLength(1);
    const noRecords = { ...minimal, scopes: { 'acme:read:notes': { source: [], description: 'Read.' } } };
    expect(() => loadIntegrationManifests(folder({ 'acme.json': noRecords }))).toThrow(
      /acme:read:notes: a data scope \(:read:\) lists the record types it gives/,
    );
    const actionWithRecords = {
      ...minimal,
      scopes: { 'acme:post': { source: [], description: 'Post.', records: ['document.note'] } },
    };
    expect(() => loadIntegrationManifests(folder({ 'acme.json': actionWithRecords }))).toThrow(
      /only data scopes list records/,
    );
  });

  it("refuses another integration's scope names, a tool that is a scope, and a key unlike the file name", () => {
    const foreign = { ...minimal, scopes: { 'other:read:x': { source: [], description: 'x', records: ['profile'] } } };
    expect(() => loadIntegrationManifests(folder({ 'acme.json': foreign }))).toThrow(/must start with "acme:"/);
    const twice = { ...minimal, tools: { 'acme:read:notes': { description: 'x' } } };
    expect(() => loadIntegrationManifests(folder({ 'acme.json': twice }))).toThrow(/is a scope already/);
    expect(() => loadIntegrationManifests(folder({ 'other.json': minimal }))).toThrow(/key must match the file name/);
  });
});
