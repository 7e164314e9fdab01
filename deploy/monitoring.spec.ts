// Guards deploy/monitoring: the Grafana dashboard is a dashboard Grafana can load, every
// alert has a runbook section that exists, and every metric an alert or a panel queries is
// one the code defines — a renamed metric otherwise leaves an alert that can never fire.
// Metrics are defined in `*metrics.ts` files (`name: '<metric>'`, STYLE: declared once);
// test-e2e/platform/metrics.e2e-spec.ts scrapes the running services for the same names.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from '@jest/globals';
import { parse, parseAllDocuments } from 'yaml';

const rootDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const monitoringDir = join(rootDir, 'deploy', 'monitoring');

interface Target {
  refId?: string;
  expr?: string;
}
interface Panel {
  id?: number;
  type?: string;
  title?: string;
  gridPos?: { h?: number; w?: number; x?: number; y?: number };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  uid?: string;
  title?: string;
  schemaVersion?: number;
  panels?: Panel[];
  templating?: { list?: Array<{ name?: string; type?: string }> };
}
interface Rule {
  alert?: string;
  record?: string;
  expr?: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const dashboard = JSON.parse(readFileSync(join(monitoringDir, 'dashboard.json'), 'utf8')) as Dashboard;
const ruleFile = parse(readFileSync(join(monitoringDir, 'alerts.yaml'), 'utf8')) as {
  apiVersion?: string;
  kind?: string;
  spec?: { groups?: Array<{ name?: string; rules?: Rule[] }> };
};
const rules = (ruleFile.spec?.groups ?? []).flatMap((group) => group.rules ?? []);
const alerts = rules.filter((rule) => rule.alert !== undefined);
const panels = (dashboard.panels ?? []).flatMap((panel) => [panel, ...(panel.panels ?? [])]);
const queryPanels = panels.filter((panel) => panel.type !== 'row');

/** GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens. */
const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\w\- ]/g, '')
    .replace(/ /g, '-');
const runbookAnchors = new Set(
  readFileSync(join(rootDir, 'docs', 'runbook.md'), 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('## '))
    .map((line) => slug(line.slice(3))),
);

const PROMQL_WORDS = new Set([
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
  'offset',
  'inf',
  'nan',
]);

/** The metric names a PromQL expression reads (not functions, label names, label values or keywords). */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // label values, quoted
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '') // grouping label lists
    .replace(/\[[^\]]*\]/g, ''); // range selectors
  const names = [...bare.matchAll(/(?<![\w$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)].map((m) => m[1] ?? '');
  return [...new Set(names.filter((name) => !PROMQL_WORDS.has(name.toLowerCase())))];
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (['node_modules', 'dist', 'generated'].includes(entry.name)) return [];
    const path = join(dir, entry.name);
    return entry.isDirectory() ? sourceFiles(path) : [path];
  });
}

/** Every metric the code defines: `name: '…'` in the `*metrics.ts` files of libs and services. */
const definedInCode = new Set(
  ['libs', 'services']
    .flatMap((group) => readdirSync(join(rootDir, group)).map((name) => join(rootDir, group, name, 'src')))
    .flatMap((src) => {
      try {
        return sourceFiles(src);
      } catch {
        return [];
      }
    })
    .filter((file) => /metrics\.ts$/.test(file) && !/\.(spec|int-spec)\.ts$/.test(file))
    .flatMap((file) => [...readFileSync(file, 'utf8').matchAll(/\bname: '([a-z_:][a-z0-9_:]*)'/g)].map((m) => m[1])),
);
/** prom-client's default process metrics (collectDefaultMetrics, which the runtime turns on). */
const promClientDir = join(rootDir, 'libs/service-kit/node_modules/prom-client/lib/metrics');
const promClientDefaults = readdirSync(promClientDir)
  .filter((file) => file.endsWith('.js'))
  .map((file) => readFileSync(join(promClientDir, file), 'utf8'))
  .join('\n');
/** Series Prometheus makes itself for every target. */
const PROMETHEUS_OWN = new Set(['up']);

function isDefined(name: string): boolean {
  if (PROMETHEUS_OWN.has(name) || definedInCode.has(name)) return true;
  const histogramBase = name.replace(/_(bucket|sum|count)$/, '');
  if (histogramBase !== name && definedInCode.has(histogramBase)) return true;
  return /^(process|nodejs)_/.test(name) && promClientDefaults.includes(`'${name}'`);
}

describe('metricNames', () => {
  it('finds the metrics of an expression and nothing else', () => {
    expect(
      metricNames(
        'sum by (le, route) (rate(http_request_duration_seconds_bucket{route!~"/healthz|x_y"}[5m])) / ignoring(reason) group_left sum(rate(sync_runs_total[30m])) > 0.2 and max(up) == 0',
      ).sort(),
    ).toEqual(['http_request_duration_seconds_bucket', 'sync_runs_total', 'up']);
  });
});

describe('deploy/monitoring/dashboard.json', () => {
  it('has what Grafana needs to load it: uid, title, schema version, a Prometheus data-source variable', () => {
    expect(dashboard.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    expect(dashboard.title).toBeTruthy();
    expect(typeof dashboard.schemaVersion).toBe('number');
    expect(dashboard.templating?.list?.find((v) => v.type === 'datasource')?.name).toBe('datasource');
  });

  it('gives every panel a unique id, a title, a place, and every query panel queries', () => {
    const ids = panels.map((panel) => panel.id);
    expect(ids.every((id) => Number.isInteger(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of panels) {
      expect([panel.id, panel.title && panel.type && panel.gridPos?.w && panel.gridPos.h !== undefined]).toEqual([
        panel.id,
        expect.anything(),
      ]);
    }
    expect(queryPanels.length).toBeGreaterThan(10);
    for (const panel of queryPanels) {
      expect([panel.title, (panel.targets ?? []).length > 0]).toEqual([panel.title, true]);
      const refIds = (panel.targets ?? []).map((t) => t.refId);
      expect(new Set(refIds).size).toBe(refIds.length);
      for (const target of panel.targets ?? [])
        expect([panel.title, target.expr?.trim()]).toEqual([panel.title, expect.any(String)]);
    }
  });

  it('queries only metrics the services define', () => {
    const unknown = queryPanels.flatMap((panel) =>
      (panel.targets ?? []).flatMap((t) =>
        metricNames(t.expr ?? '')
          .filter((name) => !isDefined(name))
          .map((name) => `${panel.title}: ${name}`),
      ),
    );
    expect(unknown).toEqual([]);
  });
});

describe('deploy/monitoring/alerts.yaml', () => {
  it('is a PrometheusRule with alerts', () => {
    expect([ruleFile.apiVersion, ruleFile.kind]).toEqual(['monitoring.coreos.com/v1', 'PrometheusRule']);
    expect(alerts.length).toBeGreaterThan(10);
    expect(new Set(alerts.map((a) => a.alert)).size).toBe(alerts.length);
  });

  it.each(alerts.map((a) => [a.alert ?? '', a] as const))(
    '%s has a severity, a summary and a runbook section that exists',
    (_name, alert) => {
      expect(['warning', 'critical']).toContain(alert.labels?.severity);
      expect(alert.annotations?.summary).toBeTruthy();
      expect(alert.annotations?.description).toBeTruthy();
      const anchor = /docs\/runbook\.md#([\w-]+)$/.exec(alert.annotations?.runbook_url ?? '')?.[1];
      expect(anchor).toBeDefined();
      expect(runbookAnchors).toContain(anchor);
    },
  );

  it.each(alerts.map((a) => [a.alert ?? '', a] as const))(
    '%s uses only metrics the services define',
    (_name, alert) => {
      const names = metricNames(alert.expr ?? '');
      expect(names.length).toBeGreaterThan(0);
      expect(names.filter((name) => !isDefined(name))).toEqual([]);
    },
  );
});

describe('deploy/monitoring (the kustomize component)', () => {
  const manifests = (file: string) =>
    parseAllDocuments(readFileSync(join(monitoringDir, file), 'utf8')).map(
      (doc) => doc.toJS() as { kind: string; spec: Record<string, unknown> },
    );

  it('scrapes the `metrics` port of the seven services, and lets only Prometheus reach it', () => {
    const [podMonitor] = manifests('pod-monitor.yaml');
    expect(podMonitor?.kind).toBe('PodMonitor');
    expect(podMonitor?.spec.podMetricsEndpoints).toEqual([
      expect.objectContaining({ port: 'metrics', path: '/metrics' }),
    ]);
    const [policy] = manifests('network-policy.yaml');
    const ingress = policy?.spec.ingress as Array<{ from: unknown[]; ports: Array<{ port: unknown }> }>;
    expect(ingress).toHaveLength(1);
    expect(ingress[0]?.ports.map((p) => p.port)).toEqual(['metrics']);
    expect(ingress[0]?.from).toEqual([
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } },
        podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } },
      },
    ]);
  });

  it('declares a metrics port 1000 above the HTTP port on every service container (METRICS_PORT default)', () => {
    for (const file of readdirSync(join(rootDir, 'deploy', 'base'))) {
      const text = readFileSync(join(rootDir, 'deploy', 'base', file), 'utf8');
      const http = /- name: http\n\s+containerPort: (\d+)/.exec(text);
      if (!http || file === 'nats.yaml') continue;
      expect([file, /- name: metrics\n\s+containerPort: (\d+)/.exec(text)?.[1]]).toEqual([
        file,
        String(Number(http[1]) + 1000),
      ]);
    }
  });
});
