// Guards the ways the stack is run outside `pnpm start`: docker-compose.yml and the
// Kubernetes manifests. A service added to one and forgotten in the other, a lost health
// check or a port published by accident is what these catch before anyone deploys.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from '@jest/globals';
import { parse, parseAllDocuments } from 'yaml';

import { SERVICE_NAMES } from '../scripts/stack/service-catalog.mjs';

const rootDir = join(dirname(fileURLToPath(import.meta.url)), '..');

interface ComposeService {
  image?: string;
  build?: { context?: string; args?: Record<string, string> };
  healthcheck?: { test?: string[] | string };
  depends_on?: Record<string, { condition?: string }>;
  ports?: unknown[];
  environment?: Record<string, string>;
  volumes?: string[];
  restart?: string;
}

// Compose files use YAML merge keys (`<<: *service`); docker compose resolves them, so must we.
const compose = parse(readFileSync(join(rootDir, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, ComposeService>;
};

describe('docker-compose.yml', () => {
  const services = compose.services;

  it('runs all seven services plus its own Postgres and NATS', () => {
    expect(Object.keys(services).sort()).toEqual([...SERVICE_NAMES, 'nats', 'postgres'].sort());
  });

  it.each(SERVICE_NAMES)('builds %s from the one Dockerfile with its own SERVICE', (name) => {
    expect(services[name]?.build?.context).toBe('.');
    expect(services[name]?.build?.args?.SERVICE).toBe(name);
  });

  it.each(SERVICE_NAMES)(
    'gives %s a readiness health check and starts it only after healthy Postgres and NATS',
    (name) => {
      const service = services[name];
      expect(JSON.stringify(service?.healthcheck?.test)).toContain('/readyz');
      expect(service?.depends_on?.postgres?.condition).toBe('service_healthy');
      expect(service?.depends_on?.nats?.condition).toBe('service_healthy');
      expect(service?.restart).toBe('unless-stopped');
    },
  );

  it.each(SERVICE_NAMES)('points %s at the compose Postgres and NATS, listening on all interfaces', (name) => {
    const env = services[name]?.environment ?? {};
    expect(new URL(env.DATABASE_URL ?? '').hostname).toBe('postgres');
    expect(new URL(env.NATS_URL ?? '').hostname).toBe('nats');
    expect(env.HTTP_HOST).toBe('0.0.0.0');
  });

  it('publishes only the gateway, on 8080', () => {
    const publishing = Object.entries(services)
      .filter(([, service]) => (service.ports ?? []).length > 0)
      .map(([name]) => name);
    expect(publishing).toEqual(['gateway']);
    expect(services.gateway?.ports).toEqual(['8080:8080']);
  });

  it('has health checks on Postgres and NATS, so depends_on can wait for them', () => {
    expect(JSON.stringify(services.postgres?.healthcheck?.test)).toContain('pg_isready');
    expect(JSON.stringify(services.nats?.healthcheck?.test)).toContain('8222/healthz');
  });

  it('runs NATS with JetStream on file storage kept in a volume', () => {
    const nats = services.nats as ComposeService & { command?: string[] };
    expect(nats.command).toEqual(expect.arrayContaining(['-js', '-sd', '/data']));
    expect(nats.volumes?.some((volume) => volume.endsWith(':/data'))).toBe(true);
  });

  it('lets the two encrypting services share one master keyring, and nobody else', () => {
    const withKeys = Object.entries(services)
      .filter(([, service]) => service.environment?.MASTER_KEY_FILE !== undefined)
      .map(([name]) => name)
      .sort();
    expect(withKeys).toEqual(['connection-broker', 'personal-server']);
    const keyFile = services['connection-broker']?.environment?.MASTER_KEY_FILE ?? '';
    for (const name of withKeys) {
      expect(services[name]?.environment?.MASTER_KEY_FILE).toBe(keyFile);
      expect(services[name]?.volumes).toContain(`master-key:${dirname(keyFile)}`);
    }
  });
});

interface K8sContainer {
  name: string;
  readinessProbe?: { httpGet?: { path?: string } };
  livenessProbe?: { httpGet?: { path?: string } };
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean };
  resources?: { requests?: Record<string, string> };
  env?: Array<{ name: string; valueFrom?: { fieldRef?: { fieldPath?: string } } }>;
}
interface K8sObject {
  kind: string;
  metadata: { name: string };
  spec?: {
    replicas?: number;
    serviceName?: string;
    clusterIP?: string;
    template?: { spec?: { containers?: K8sContainer[]; securityContext?: { runAsNonRoot?: boolean } } };
    selector?: { matchLabels?: Record<string, string> };
  };
}

function renderDevOverlay(): K8sObject[] | undefined {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  const rendered = execFileSync('kubectl', ['kustomize', join(rootDir, 'deploy', 'overlays', 'dev')], {
    encoding: 'utf8',
  });
  return parseAllDocuments(rendered).map((document) => document.toJS() as K8sObject);
}

const manifests = renderDevOverlay();
const describeKubernetes = manifests ? describe : describe.skip;
if (!manifests) {
  // Visible in the test output, so a green run without kubectl is not mistaken for coverage.
  console.warn(
    'deploy.spec.ts: kubectl not found — skipping the Kubernetes manifest checks (install kubectl to run them)',
  );
}

describeKubernetes('deploy/overlays/dev (kubectl kustomize)', () => {
  const objects = manifests ?? [];
  const workloads = objects.filter((object) => ['Deployment', 'StatefulSet'].includes(object.kind));
  const workload = (name: string) => workloads.find((object) => object.metadata.name === name);

  it.each(SERVICE_NAMES)('has a workload for %s with readiness on /readyz and liveness on /healthz', (name) => {
    const container = workload(name)?.spec?.template?.spec?.containers?.find((c) => c.name === name);
    expect(container).toBeDefined();
    expect(container?.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(container?.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(container?.resources?.requests?.cpu).toBeDefined();
    expect(container?.resources?.requests?.memory).toBeDefined();
  });

  it.each(SERVICE_NAMES)('runs %s as non-root with a read-only root filesystem', (name) => {
    const spec = workload(name)?.spec?.template?.spec;
    expect(spec?.securityContext?.runAsNonRoot).toBe(true);
    for (const container of spec?.containers ?? []) {
      expect(container.securityContext?.readOnlyRootFilesystem).toBe(true);
      expect(container.securityContext?.allowPrivilegeEscalation).toBe(false);
    }
  });

  it('runs personal-server as a StatefulSet of shards behind a headless Service, shard id from the pod', () => {
    const personalServer = workload('personal-server');
    expect(personalServer?.kind).toBe('StatefulSet');
    const headless = objects.find(
      (object) => object.kind === 'Service' && object.metadata.name === personalServer?.spec?.serviceName,
    );
    expect(headless?.spec?.clusterIP).toBe('None');
    const env = personalServer?.spec?.template?.spec?.containers?.[0]?.env ?? [];
    expect(env.find((variable) => variable.name === 'SHARD_ID')?.valueFrom?.fieldRef?.fieldPath).toBe(
      "metadata.labels['apps.kubernetes.io/pod-index']",
    );
  });

  it('runs NATS as a three-server StatefulSet', () => {
    const nats = workload('nats');
    expect(nats?.kind).toBe('StatefulSet');
    expect(nats?.spec?.replicas).toBe(3);
  });

  it('protects the gateway with a PodDisruptionBudget', () => {
    const budget = objects.find(
      (object) => object.kind === 'PodDisruptionBudget' && object.metadata.name === 'gateway',
    );
    expect(budget?.spec?.selector?.matchLabels).toEqual({ 'app.kubernetes.io/name': 'gateway' });
  });
});
