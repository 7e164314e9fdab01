import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { SERVICE_NAMES } from '@context-gateway/proto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';

import { rootDir, startTestStack, type TestStack } from '../support/test-stack.js';

// Every service scraped as Prometheus scrapes it, on its metrics listener (each logs it as
// `metrics_url` when ready), after some traffic: each alert in deploy/monitoring must read
// metrics that some service really exposes, and the gateway's public port must not serve them.
let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack('metrics');
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

/** service → metrics URLs (personal-server has one per shard). */
function metricsUrls(): Map<string, string[]> {
  const urls = new Map<string, string[]>();
  for (const line of stack.logs) {
    const { service, metrics_url: url, msg } = line.json ?? {};
    if (typeof service === 'string' && typeof url === 'string' && msg === `${service} ready`)
      urls.set(service, [...(urls.get(service) ?? []), url]);
  }
  return urls;
}

/** Metric families in an exposition (`# TYPE name kind`), histograms with their series suffixes. */
function families(text: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, kind] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    if (!name) continue;
    names.add(name);
    if (kind === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
  }
  return names;
}

/** Metric names in a PromQL expression: not quoted values, label matchers, grouping lists or functions. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
    .replace(/\[[^\]]*\]/g, '');
  const words = new Set([
    'by',
    'without',
    'on',
    'ignoring',
    'group_left',
    'group_right',
    'and',
    'or',
    'unless',
    'bool',
  ]);
  return [...bare.matchAll(/(?<![\w$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)]
    .map((m) => m[1] ?? '')
    .filter((name) => !words.has(name));
}

describe('metrics', () => {
  it('are served by every service on its metrics listener, never on the gateway public port', async () => {
    // Some traffic first, so the request counters have series.
    await fetch(`${stack.gatewayUrl}/v1/health`);
    expect((await fetch(`${stack.gatewayUrl}/metrics`)).status).toBe(404);
    const urls = metricsUrls();
    expect([...urls.keys()].sort()).toEqual([...SERVICE_NAMES].sort());
    for (const [service, list] of urls) {
      for (const url of list) {
        const response = await fetch(url);
        expect([service, response.status]).toEqual([service, 200]);
        expect(await response.text()).toContain(`service_ready{service="${service}"`);
      }
    }
  });

  it('include every metric an alert in deploy/monitoring/alerts.yaml reads', async () => {
    const exposed = new Set<string>(['up']);
    for (const list of metricsUrls().values())
      for (const url of list) for (const name of families(await (await fetch(url)).text())) exposed.add(name);
    const rules = parse(readFileSync(join(rootDir, 'deploy/monitoring/alerts.yaml'), 'utf8')) as {
      spec: { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
    };
    const missing = rules.spec.groups
      .flatMap((g) => g.rules)
      .flatMap((rule) =>
        metricNames(rule.expr)
          .filter((name) => !exposed.has(name))
          .map((name) => `${rule.alert}: ${name}`),
      );
    expect(missing).toEqual([]);
  });
});
