// Guards the ways the stack is run outside `pnpm start`: docker-compose.yml and the
// Kubernetes manifests. A service added to one and forgotten in the other, a lost health
// check, a port published by accident, a secret pasted into a manifest or a network path
// left open is what these catch before anyone deploys. Every overlay is rendered with
// `kubectl kustomize` and checked as the cluster would receive it.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
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
  volumes?: Array<string | ComposeVolume>;
  restart?: string;
}

/** A volume in compose's long syntax (used where only a subpath of a volume is mounted). */
interface ComposeVolume {
  type: string;
  source: string;
  target: string;
  read_only?: boolean;
  volume?: { subpath?: string };
}

/** The short-syntax volumes (`source:target[:ro]`) of a service. */
function shortVolumes(service: ComposeService | undefined): string[] {
  return (service?.volumes ?? []).filter((v): v is string => typeof v === 'string');
}

/** The long-syntax volumes of a service. */
function longVolumes(service: ComposeService | undefined): ComposeVolume[] {
  return (service?.volumes ?? []).filter((v): v is ComposeVolume => typeof v !== 'string');
}

// Compose files use YAML merge keys (`<<: *service`); docker compose resolves them, so must we.
const compose = parse(readFileSync(join(rootDir, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
};

describe('docker-compose.yml', () => {
  const services = compose.services;

  it('runs all seven services plus its own Postgres and NATS, the NATS credentials and JetStream bootstrap, db-setup, and the audit witness', () => {
    expect(Object.keys(services).sort()).toEqual(
      [
        ...SERVICE_NAMES,
        'audit-log-key',
        'db-setup',
        'nats',
        'nats-bootstrap',
        'nats-credentials',
        'postgres',
        'witness',
      ].sort(),
    );
    const bootstrap = services['nats-bootstrap'] as ComposeService & { command?: string[] };
    expect(JSON.stringify(bootstrap?.command)).toContain('@context-gateway/messaging/dist/bootstrap.cli.js');
    expect(bootstrap?.depends_on?.nats?.condition).toBe('service_healthy');
  });

  it('migrates and creates the database roles in db-setup, before any service starts', () => {
    const setup = services['db-setup'] as ComposeService & { build?: { target?: string } };
    expect(setup.build?.target).toBe('db-setup');
    expect(setup.depends_on?.postgres?.condition).toBe('service_healthy');
    for (const name of SERVICE_NAMES) {
      expect([name, services[name]?.depends_on?.['db-setup']?.condition]).toEqual([
        name,
        'service_completed_successfully',
      ]);
    }
  });

  it.each(SERVICE_NAMES)(
    'logs %s in as its own role, with the password db-setup gave that role, unable to migrate',
    (name) => {
      const env = services[name]?.environment ?? {};
      const schema = name.replace(/-/g, '_');
      const setupEnv = services['db-setup']?.environment ?? {};
      expect(env.DATABASE_USER).toBe(`cg_${schema}`);
      expect(env.DATABASE_PASSWORD).toBeTruthy();
      expect(env.DATABASE_PASSWORD).toBe(setupEnv[`DB_ROLE_PASSWORD_${schema.toUpperCase()}`]);
      expect(env.DATABASE_MIGRATIONS).toBe('verify');
      // The shared URL carries no credentials: only db-setup holds the admin's.
      const url = new URL(env.DATABASE_URL ?? '');
      expect([url.username, url.password]).toEqual(['', '']);
    },
  );

  it('gives every service a different database password', () => {
    const passwords = SERVICE_NAMES.map((name) => services[name]?.environment?.DATABASE_PASSWORD);
    expect(new Set(passwords).size).toBe(SERVICE_NAMES.length);
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
      expect(service?.depends_on?.['nats-bootstrap']?.condition).toBe('service_completed_successfully');
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
    expect(shortVolumes(nats).some((volume) => volume.endsWith(':/data'))).toBe(true);
  });

  it('runs NATS with authorization: each service and the bootstrap mount only their own nkey seed', () => {
    const credentials = services['nats-credentials'] as ComposeService & { command?: string[] };
    expect(JSON.stringify(credentials.command)).toContain('@context-gateway/messaging/dist/credentials.cli.js');
    const nats = services.nats as ComposeService & { command?: string[] };
    expect(nats.depends_on?.['nats-credentials']?.condition).toBe('service_completed_successfully');
    const config = nats.command?.[nats.command.indexOf('-c') + 1] ?? '';
    expect(longVolumes(nats)).toEqual([
      {
        type: 'volume',
        source: 'nats-credentials',
        target: dirname(config),
        read_only: true,
        volume: { subpath: 'server' },
      },
    ]);
    expect(config.endsWith('/auth.conf')).toBe(true);
    // TLS required, with the certificate made for the name the services use (nats).
    expect(JSON.stringify(credentials.command)).toContain('"--tls-host","nats"');
    const flag = (name: string) => nats.command?.[nats.command.indexOf(name) + 1];
    expect(nats.command).toContain('--tls');
    expect([flag('--tlscert'), flag('--tlskey')]).toEqual([`${dirname(config)}/tls.crt`, `${dirname(config)}/tls.key`]);
    for (const [name, identity] of [...SERVICE_NAMES.map((n) => [n, n]), ['nats-bootstrap', 'bootstrap']]) {
      const service = services[name ?? ''];
      const seedFile = service?.environment?.NATS_NKEY_SEED_FILE ?? '';
      expect(new URL(service?.environment?.NATS_URL ?? '').hostname).toBe('nats');
      expect(service?.environment?.NATS_TLS_CA_FILE).toBe(`${dirname(seedFile)}/ca.crt`);
      const mounts = [...longVolumes(service), ...shortVolumes(service).map((v) => ({ source: v.split(':')[0] }))];
      // Its own seed, read-only, and no other part of the credentials volume.
      expect([name, mounts.filter((m) => m.source === 'nats-credentials')]).toEqual([
        name,
        [
          {
            type: 'volume',
            source: 'nats-credentials',
            target: dirname(seedFile),
            read_only: true,
            volume: { subpath: identity },
          },
        ],
      ]);
    }
    expect(Object.keys(compose.volumes ?? {})).toContain('nats-credentials');
  });

  it('gives each encrypting service its own keyring volume; the old shared keyring is only read', () => {
    const withKeys = Object.entries(services)
      .filter(([, service]) => service.environment?.KEYRING_FILE !== undefined)
      .map(([name]) => name)
      .sort();
    expect(withKeys).toEqual(['connection-broker', 'personal-server']);
    const keyVolumes = withKeys.map((name) => {
      const keyring = services[name]?.environment?.KEYRING_FILE ?? '';
      expect(keyring).toBe(`/var/lib/context-gateway/keys/${name}.keyring`);
      const volume = shortVolumes(services[name]).find((v) => v.endsWith(`:${dirname(keyring)}`));
      expect(volume).toBeDefined();
      // The formerly shared keyring: read-only, so no service can write the other's KEK.
      expect(shortVolumes(services[name])).toContain('master-key:/var/lib/context-gateway/shared-keys:ro');
      return volume?.split(':')[0];
    });
    expect(new Set(keyVolumes).size).toBe(2);
  });

  it("sends audit's checkpoints to a witness that trusts the log's published key, and pins the witness's", () => {
    const keyFile = services['audit-log-key'] as ComposeService & { command?: string[] };
    const witness = services.witness as ComposeService;
    const audit = services.audit as ComposeService;
    // audit-log-key opens audit's own key (its volume) and publishes the public half.
    expect(keyFile.build?.args?.SERVICE).toBe('audit');
    expect(JSON.stringify(keyFile.command)).toContain('dist/log/log-key.cli.js');
    const published = keyFile.command?.[(keyFile.command?.indexOf('--out') ?? -2) + 1] ?? '';
    expect(shortVolumes(keyFile)).toContain('audit-key:/var/lib/context-gateway/keys');
    expect(keyFile.environment?.DATABASE_USER).toBe('cg_audit');
    // The witness trusts that file's key, runs from its own image, with its own volume and no NATS or database.
    expect(witness.build?.args?.SERVICE).toBe('witness');
    expect(witness.environment?.WITNESS_LOG_KEYS_FILE).toBe(published);
    expect(witness.depends_on?.['audit-log-key']?.condition).toBe('service_completed_successfully');
    expect(Object.keys(witness.environment ?? {}).filter((k) => /^(DATABASE|NATS)_/.test(k))).toEqual([]);
    expect(shortVolumes(witness).some((v) => v.startsWith('witness-data:'))).toBe(true);
    expect(shortVolumes(witness).some((v) => v.startsWith('audit-key:'))).toBe(false);
    expect(JSON.stringify(witness.healthcheck?.test)).toContain('/healthz');
    // audit submits to it, pins the key the witness published, and starts once the witness is up.
    expect(new URL(audit.environment?.AUDIT_WITNESS_URL ?? '').host).toBe(`witness:${witness.environment?.HTTP_PORT}`);
    expect(audit.environment?.AUDIT_WITNESS_KEY).toBe(witness.environment?.WITNESS_PUBLISH_KEY_FILE);
    expect(shortVolumes(audit)).toContain('witness-trust:/var/lib/context-gateway/trust:ro');
    expect(audit.depends_on?.witness?.condition).toBe('service_healthy');
    expect(Object.keys(compose.volumes ?? {})).toEqual(expect.arrayContaining(['witness-data', 'witness-trust']));
  });

  it("keeps audit's checkpoint signing key on a volume of its own, across container restarts", () => {
    const volumes = shortVolumes(services.audit);
    expect(volumes).toContain('audit-key:/var/lib/context-gateway/keys');
    expect(volumes.some((v) => v.startsWith('master-key:'))).toBe(false);
    expect(Object.keys(compose.volumes ?? {})).toContain('audit-key');
  });
});

interface Selector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }>;
}
interface K8sContainer {
  name: string;
  image?: string;
  envFrom?: Array<{ configMapRef?: { name: string } }>;
  readinessProbe?: { httpGet?: { path?: string } };
  livenessProbe?: { httpGet?: { path?: string } };
  securityContext?: {
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { drop?: string[] };
    seccompProfile?: { type?: string };
  };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  env?: Array<{
    name: string;
    value?: string;
    valueFrom?: { fieldRef?: { fieldPath?: string }; secretKeyRef?: { name?: string; key?: string } };
  }>;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
  command?: string[];
}
interface PodSpec {
  containers?: K8sContainer[];
  initContainers?: K8sContainer[];
  securityContext?: { runAsNonRoot?: boolean; seccompProfile?: { type?: string } };
  volumes?: Array<{ name: string; secret?: { secretName?: string } }>;
}
interface PolicyPeer {
  podSelector?: Selector;
  namespaceSelector?: Selector;
  ipBlock?: { cidr: string; except?: string[] };
}
interface PolicyRule {
  from?: PolicyPeer[];
  to?: PolicyPeer[];
  ports?: Array<{ port?: number | string; protocol?: string }>;
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  data?: Record<string, string>;
  spec?: {
    replicas?: number;
    serviceName?: string;
    clusterIP?: string;
    type?: string;
    template?: { metadata?: { labels?: Record<string, string> }; spec?: PodSpec };
    selector?: Selector;
    volumeClaimTemplates?: Array<{
      metadata: { name: string };
      spec?: { resources?: { requests?: { storage?: string } } };
    }>;
    // NetworkPolicy
    podSelector?: Selector;
    policyTypes?: string[];
    ingress?: PolicyRule[];
    egress?: PolicyRule[];
    // HorizontalPodAutoscaler
    scaleTargetRef?: { apiVersion?: string; kind?: string; name?: string };
    minReplicas?: number;
    maxReplicas?: number;
    metrics?: Array<{ type: string; resource?: { name?: string; target?: { type?: string } } }>;
  };
}

/** Kubernetes label-selector semantics: every matchLabels pair and every expression must hold. */
function selects(selector: Selector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return false;
  const pairs = Object.entries(selector.matchLabels ?? {}).every(([key, value]) => labels[key] === value);
  const expressions = (selector.matchExpressions ?? []).every(({ key, operator, values = [] }) => {
    const value = labels[key];
    if (operator === 'In') return value !== undefined && values.includes(value);
    if (operator === 'NotIn') return value === undefined || !values.includes(value);
    if (operator === 'Exists') return value !== undefined;
    return value === undefined;
  });
  return pairs && expressions;
}

// Names that look like secrets but hold a path, a provider name or a flag: the secret itself
// is the file behind the path, mounted from a Secret (checked below).
const NOT_SECRETS = new Set([
  'KEY_PROVIDER',
  // A path: the seed itself comes from the context-gateway-nats-seeds Secret, mounted there.
  'NATS_NKEY_SEED_FILE',
  'MASTER_KEY_CREATE_IF_MISSING',
  'DATA_KEY_DIR',
  'DATA_KEY_CACHE_TTL_MS',
  'AUDIT_SIGNING_KEY_FILE',
  'MASTER_KEY_FILE',
  'OAUTH_KEYRING_FILE',
  'OAUTH_KEYRING_CREATE_IF_MISSING',
  'KEYRING_FILE',
  'PKCS11_MODULE',
  'PKCS11_TOKEN_LABEL',
  'PKCS11_KEY_LABEL',
  'PKCS11_PIN_FILE',
]);
const SECRET_NAME = /TOKEN|SECRET|PASSWORD|KEY|DATABASE_URL/;

const overlaysDir = join(rootDir, 'deploy', 'overlays');
const overlayNames = readdirSync(overlaysDir, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name)
  .sort();

function hasKubectl(): boolean {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function render(overlay: string): K8sObject[] {
  const rendered = execFileSync('kubectl', ['kustomize', join(overlaysDir, overlay)], { encoding: 'utf8' });
  return parseAllDocuments(rendered).map((document) => document.toJS() as K8sObject);
}

const rendered = hasKubectl() ? new Map(overlayNames.map((name) => [name, render(name)])) : undefined;
const describeKubernetes = rendered ? describe : describe.skip;
if (!rendered) {
  // Visible in the test output, so a green run without kubectl is not mistaken for coverage.
  console.warn(
    'deploy.spec.ts: kubectl not found — skipping the Kubernetes manifest checks (install kubectl to run them)',
  );
}

it('has a dev and a prod overlay', () => {
  expect(overlayNames).toEqual(expect.arrayContaining(['dev', 'prod']));
});

describeKubernetes.each(overlayNames)('deploy/overlays/%s (kubectl kustomize)', (overlay) => {
  const objects = rendered?.get(overlay) ?? [];
  const ofKind = (kind: string) => objects.filter((object) => object.kind === kind);
  // The db-setup Job is held to the same rules as the long-running pods.
  const workloads = objects.filter((object) => ['Deployment', 'StatefulSet', 'Job'].includes(object.kind));
  const workload = (name: string) => workloads.find((object) => object.metadata.name === name);
  const podLabels = (object: K8sObject) => object.spec?.template?.metadata?.labels ?? {};
  const podSpec = (object: K8sObject) => object.spec?.template?.spec ?? {};
  const allContainers = (object: K8sObject) => [
    ...(podSpec(object).initContainers ?? []),
    ...(podSpec(object).containers ?? []),
  ];
  const hpaFor = (name: string) =>
    ofKind('HorizontalPodAutoscaler').find((hpa) => hpa.spec?.scaleTargetRef?.name === name);
  const policies = ofKind('NetworkPolicy');
  const policiesFor = (object: K8sObject, type: 'Ingress' | 'Egress') =>
    policies.filter(
      (policy) => policy.spec?.policyTypes?.includes(type) && selects(policy.spec.podSelector, podLabels(object)),
    );
  const egressRules = (object: K8sObject) => policiesFor(object, 'Egress').flatMap((p) => p.spec?.egress ?? []);
  const ports = (rule: PolicyRule) => (rule.ports ?? []).map((port) => Number(port.port));

  it.each(SERVICE_NAMES)('has a workload for %s with readiness on /readyz and liveness on /healthz', (name) => {
    const container = podSpec(workload(name) ?? ({} as K8sObject)).containers?.find((c) => c.name === name);
    expect(container).toBeDefined();
    expect(container?.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(container?.livenessProbe?.httpGet?.path).toBe('/healthz');
  });

  it('gives every container of every workload CPU and memory requests and limits', () => {
    const missing = workloads.flatMap((object) =>
      allContainers(object)
        .filter((c) => !(c.resources?.requests?.cpu && c.resources.requests.memory))
        .concat(allContainers(object).filter((c) => !(c.resources?.limits?.cpu && c.resources.limits.memory)))
        .map((c) => `${object.metadata.name}/${c.name}`),
    );
    expect(missing).toEqual([]);
  });

  it('runs every container non-root, read-only, without capabilities, under RuntimeDefault seccomp', () => {
    for (const object of workloads) {
      const spec = podSpec(object);
      expect([object.metadata.name, spec.securityContext?.runAsNonRoot]).toEqual([object.metadata.name, true]);
      for (const c of allContainers(object)) {
        const where = `${object.metadata.name}/${c.name}`;
        const seccomp = c.securityContext?.seccompProfile?.type ?? spec.securityContext?.seccompProfile?.type;
        expect([where, seccomp]).toEqual([where, 'RuntimeDefault']);
        expect([where, c.securityContext?.readOnlyRootFilesystem]).toEqual([where, true]);
        expect([where, c.securityContext?.allowPrivilegeEscalation]).toEqual([where, false]);
        expect([where, c.securityContext?.capabilities?.drop]).toEqual([where, ['ALL']]);
      }
    }
  });

  it('takes every secret-looking variable from a Secret, never a literal', () => {
    const literal = workloads.flatMap((object) =>
      allContainers(object).flatMap((c) =>
        (c.env ?? [])
          .filter((v) => SECRET_NAME.test(v.name) && !NOT_SECRETS.has(v.name) && !v.valueFrom?.secretKeyRef)
          .map((v) => `${object.metadata.name}/${c.name}: ${v.name}`),
      ),
    );
    expect(literal).toEqual([]);
    // envFrom a ConfigMap would bypass the check above: no secret-looking keys there either.
    const inConfigMaps = ofKind('ConfigMap').flatMap((map) =>
      Object.keys(map.data ?? {}).filter((key) => SECRET_NAME.test(key) && !NOT_SECRETS.has(key)),
    );
    expect(inConfigMaps).toEqual([]);
  });

  it('mounts each service its own keyring and the audit signing key from Secrets, as 0600 copies', () => {
    const secretVolumes = (name: string) =>
      (
        (workload(name)?.spec?.template?.spec as { volumes?: Array<{ secret?: { secretName?: string } }> })?.volumes ??
        []
      )
        .flatMap((volume) => (volume.secret?.secretName ? [volume.secret.secretName] : []))
        // Every service mounts its NATS seed and the NATS CA too (checked on their own above).
        .filter((secret) => !['context-gateway-nats-seeds', 'context-gateway-nats-tls'].includes(secret));
    expect(secretVolumes('connection-broker')).toEqual(['context-gateway-connection-broker-keyring']);
    expect(secretVolumes('personal-server')).toEqual(['context-gateway-personal-server-keyring']);
    expect(secretVolumes('audit')).toEqual(['context-gateway-audit-signing-key']);
    for (const name of ['connection-broker', 'personal-server']) {
      const env = podSpec(workload(name) ?? ({} as K8sObject)).containers?.[0]?.env ?? [];
      expect(env.find((v) => v.name === 'MASTER_KEY_CREATE_IF_MISSING')?.value).toBe('false');
      expect(env.find((v) => v.name === 'KEYRING_FILE')?.value).toBe(`/var/lib/context-gateway/keys/${name}.keyring`);
      // Wrapped data keys outside the database, on a volume that outlives the pod.
      expect(env.find((v) => v.name === 'DATA_KEY_DIR')?.value).toBe('/var/lib/context-gateway/data-keys');
    }
  });

  it.each(SERVICE_NAMES)(
    'logs %s in as its own database role from its own Secret key, and never gives it the admin',
    (name) => {
      const schema = name.replace(/-/g, '_');
      const env = podSpec(workload(name) ?? ({} as K8sObject)).containers?.find((c) => c.name === name)?.env ?? [];
      expect(env.find((v) => v.name === 'DATABASE_USER')?.value).toBe(`cg_${schema}`);
      const password = env.find((v) => v.name === 'DATABASE_PASSWORD')?.valueFrom?.secretKeyRef;
      expect(password?.name).toMatch(/^context-gateway-database-roles/);
      expect(password?.key).toBe(name);
      // db-setup creates the role with the password from the same Secret key.
      const setupEnv = podSpec(workload('db-setup') ?? ({} as K8sObject)).containers?.[0]?.env ?? [];
      expect(
        setupEnv.find((v) => v.name === `DB_ROLE_PASSWORD_${schema.toUpperCase()}`)?.valueFrom?.secretKeyRef,
      ).toEqual(password);
      const secretsUsed = allContainers(workload(name) ?? ({} as K8sObject)).flatMap((c) =>
        (c.env ?? []).flatMap((v) => v.valueFrom?.secretKeyRef?.name ?? []),
      );
      expect(secretsUsed.filter((secret) => secret.startsWith('context-gateway-database-admin'))).toEqual([]);
    },
  );

  it('runs migrations and creates the roles in a db-setup Job, the only pod with the admin login', () => {
    const job = workload('db-setup');
    expect(job?.kind).toBe('Job');
    const env = podSpec(job ?? ({} as K8sObject)).containers?.[0]?.env ?? [];
    expect(env.find((v) => v.name === 'DATABASE_URL')?.valueFrom?.secretKeyRef?.name).toMatch(
      /^context-gateway-database-admin/,
    );
    const config = ofKind('ConfigMap').find((map) => map.metadata.name.startsWith('context-gateway-config'));
    expect(config?.data?.DATABASE_MIGRATIONS).toBe('verify');
    // Postgres only: no NATS, no internet.
    expect([...new Set(egressRules(job ?? ({} as K8sObject)).flatMap(ports))].sort((a, b) => a - b)).toEqual([
      53, 5432,
    ]);
  });

  it('denies all traffic in the namespace by default, both ways', () => {
    const denyAll = policies.filter(
      (policy) =>
        Object.keys(policy.spec?.podSelector ?? {}).length === 0 &&
        policy.spec?.policyTypes?.includes('Ingress') &&
        policy.spec.policyTypes.includes('Egress') &&
        (policy.spec.ingress ?? []).length === 0 &&
        (policy.spec.egress ?? []).length === 0,
    );
    expect(denyAll).toHaveLength(1);
  });

  it("tells the gateway which proxies' X-Forwarded-For to believe, as addresses or CIDRs", () => {
    const config = ofKind('ConfigMap').find((map) => map.metadata.name.startsWith('context-gateway-config'));
    const proxies = String(config?.data?.['HTTP_TRUSTED_PROXIES'] ?? '').split(',');
    expect(proxies.filter(Boolean).length).toBeGreaterThan(0);
    for (const proxy of proxies) {
      const [address = '', bits] = proxy.trim().split('/');
      expect(isIP(address)).not.toBe(0);
      if (bits !== undefined) expect(Number(bits)).toBeLessThanOrEqual(isIP(address) === 4 ? 32 : 128);
    }
    expect(podSpec(workload('gateway') ?? ({} as K8sObject)).containers?.[0]?.envFrom).toEqual(
      expect.arrayContaining([{ configMapRef: { name: config?.metadata.name } }]),
    );
  });

  it('lets traffic from outside the namespace reach the gateway only, on 8080', () => {
    const fromOutside = (rule: PolicyRule) =>
      rule.from === undefined ||
      rule.from.length === 0 ||
      rule.from.some((peer) => peer.ipBlock !== undefined || peer.namespaceSelector !== undefined);
    const reachable = workloads
      .filter((object) =>
        policiesFor(object, 'Ingress').some((policy) => (policy.spec?.ingress ?? []).some(fromOutside)),
      )
      .map((object) => object.metadata.name);
    expect(reachable).toEqual(['gateway']);
    const gatewayOpen = policiesFor(workload('gateway') ?? ({} as K8sObject), 'Ingress')
      .flatMap((policy) => policy.spec?.ingress ?? [])
      .filter(fromOutside);
    expect(gatewayOpen.flatMap(ports)).toEqual([8080]);
    // Nothing is published around the policies either: no LoadBalancer or NodePort Service.
    expect(
      ofKind('Service').filter((service) => ['LoadBalancer', 'NodePort'].includes(service.spec?.type ?? '')),
    ).toEqual([]);
  });

  it.each(SERVICE_NAMES)(
    'lets %s out only to NATS, Postgres and DNS (and HTTPS to the internet if it calls sources or IdPs, identity if the gateway, the witness if audit)',
    (name) => {
      const object = workload(name) ?? ({} as K8sObject);
      const rules = egressRules(object);
      // identity calls the organizations' IdPs and fetches Client ID Metadata Documents.
      const callsSources = ['connection-broker', 'sync-worker', 'identity'].includes(name);
      const allowed = [...new Set(rules.flatMap(ports))].sort((a, b) => a - b);
      // The gateway also forwards /oauth/* to identity's HTTP port, and to nothing else there.
      const forwardsOAuth = name === 'gateway';
      const expected = callsSources
        ? [53, 443, 4222, 5432]
        : forwardsOAuth
          ? [53, 4222, 5432, 8081]
          : name === 'audit'
            ? [53, 4222, 5432, 8087]
            : [53, 4222, 5432];
      expect(allowed).toEqual(expected);
      // audit reaches the witness's namespace on its port (deploy/witness), nothing else there.
      for (const rule of rules.filter((r) => ports(r).includes(8087))) {
        expect(rule.to).toEqual([
          {
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'context-gateway-witness' } },
            podSelector: { matchLabels: { 'app.kubernetes.io/name': 'witness' } },
          },
        ]);
      }
      for (const rule of rules.filter((r) => ports(r).includes(8081))) {
        expect(rule.to).toEqual([{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'identity' } } }]);
      }
      // No rule without ports: that would open every port.
      expect(rules.filter((rule) => (rule.ports ?? []).length === 0)).toEqual([]);
      for (const rule of rules.filter((r) => ports(r).includes(4222))) {
        expect(rule.to).toEqual([{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'nats' } } }]);
      }
      for (const rule of rules.filter((r) => ports(r).includes(443))) {
        for (const peer of rule.to ?? []) {
          // The internet, not the cluster or the cloud metadata endpoint.
          expect(peer.ipBlock?.except).toEqual(
            expect.arrayContaining(
              peer.ipBlock?.cidr === '0.0.0.0/0' ? ['10.0.0.0/8', '169.254.0.0/16'] : ['fc00::/7'],
            ),
          );
        }
      }
    },
  );

  it.each([...SERVICE_NAMES.map((name) => [name, name]), ['nats-bootstrap', 'bootstrap']])(
    'mounts %s only its own NATS seed, from the seeds Secret',
    (name, identity) => {
      const object = workload(name ?? '') ?? ({} as K8sObject);
      const container = podSpec(object).containers?.find((c) => c.name === name);
      const seedFile = container?.env?.find((e) => e.name === 'NATS_NKEY_SEED_FILE')?.value ?? '';
      const seedVolumes = (podSpec(object).volumes ?? []).filter(
        (v) => v.secret?.secretName === 'context-gateway-nats-seeds',
      );
      expect(seedVolumes).toEqual([
        {
          name: 'nats-seed',
          secret: {
            secretName: 'context-gateway-nats-seeds',
            items: [{ key: `${identity}.nk`, path: 'seed.nk' }],
            defaultMode: 0o440,
          },
        },
      ]);
      expect(container?.volumeMounts).toEqual(
        expect.arrayContaining([{ name: 'nats-seed', mountPath: dirname(seedFile), readOnly: true }]),
      );
      expect(seedFile.endsWith('/seed.nk')).toBe(true);
      // TLS: the CA alone from the NATS TLS Secret, never the servers' key.
      const caFile = container?.env?.find((e) => e.name === 'NATS_TLS_CA_FILE')?.value ?? '';
      const tlsVolumes = (podSpec(object).volumes ?? []).filter(
        (v) => v.secret?.secretName === 'context-gateway-nats-tls',
      );
      expect(tlsVolumes).toEqual([
        {
          name: 'nats-ca',
          secret: {
            secretName: 'context-gateway-nats-tls',
            items: [{ key: 'ca.crt', path: 'ca.crt' }],
            defaultMode: 0o444,
          },
        },
      ]);
      expect(container?.volumeMounts).toEqual(
        expect.arrayContaining([{ name: 'nats-ca', mountPath: dirname(caFile), readOnly: true }]),
      );
      // Readable by the pod's group only (fsGroup), not by everyone.
      expect((podSpec(object).securityContext as { fsGroup?: number } | undefined)?.fsGroup).toBe(1000);
    },
  );

  it('runs NATS with authorization: its config includes the users generated from the catalog', () => {
    const config = ofKind('ConfigMap').find((c) => c.metadata.name.startsWith('nats-config'));
    expect(config?.data?.['nats.conf']).toMatch(/^\s*include \.\/auth\.conf$/m);
    const volume = (podSpec(workload('nats') ?? ({} as K8sObject)).volumes ?? []).find((v) => v.name === 'config') as
      { projected?: { sources?: Array<{ configMap?: { name?: string; items?: unknown[] } }> } } | undefined;
    expect(volume?.projected?.sources?.map((source) => source.configMap?.name)).toEqual([
      expect.stringMatching(/^nats-config/),
      'context-gateway-nats-auth',
    ]);
    expect(volume?.projected?.sources?.[1]?.configMap?.items).toEqual([{ key: 'auth.conf', path: 'auth.conf' }]);
  });

  it('runs NATS with TLS on client connections and on the cluster routes, routes verified both ways', () => {
    const conf = ofKind('ConfigMap').find((c) => c.metadata.name.startsWith('nats-config'))?.data?.['nats.conf'] ?? '';
    const blocks = [...conf.matchAll(/tls \{([^}]*)\}/g)].map((m) => m[1] ?? '');
    expect(blocks).toHaveLength(2);
    for (const block of blocks) {
      expect(block).toContain('cert_file: /etc/nats-tls/tls.crt');
      expect(block).toContain('key_file: /etc/nats-tls/tls.key');
      expect(block).toContain('ca_file: /etc/nats-tls/ca.crt');
    }
    // The second block is inside `cluster { … }`: a route must present a certificate of the CA.
    expect(conf.indexOf('cluster {')).toBeLessThan(conf.lastIndexOf('tls {'));
    expect(blocks[1]).toContain('verify: true');
    const nats = workload('nats') ?? ({} as K8sObject);
    const tls = (podSpec(nats).volumes ?? []).find((v) => v.name === 'tls');
    expect(tls?.secret?.secretName).toBe('context-gateway-nats-tls');
    expect(podSpec(nats).containers?.[0]?.volumeMounts).toEqual(
      expect.arrayContaining([{ name: 'tls', mountPath: '/etc/nats-tls', readOnly: true }]),
    );
  });

  it('runs every stream with 3 replicas on a 3-node NATS cluster (the bootstrap refuses to lower a stream)', () => {
    expect(workload('nats')?.spec?.replicas).toBe(3);
    const env = allContainers(workload('nats-bootstrap') ?? ({} as K8sObject)).flatMap((c) => c.env ?? []);
    expect(env.find((e) => e.name === 'NATS_STREAM_REPLICAS')?.value).toBe('3');
  });

  it('lets NATS be reached by the seven services and the bootstrap on 4222 and by its peers on 6222, nobody else', () => {
    const nats = workload('nats') ?? ({} as K8sObject);
    const rules = policiesFor(nats, 'Ingress').flatMap((policy) => policy.spec?.ingress ?? []);
    const byPort = new Map(rules.map((rule) => [ports(rule).join(','), rule.from ?? []]));
    expect([...byPort.keys()].sort()).toEqual(['4222', '6222']);
    const clients = byPort.get('4222')?.[0]?.podSelector?.matchExpressions?.[0]?.values ?? [];
    expect([...clients].sort()).toEqual([...SERVICE_NAMES, 'nats-bootstrap'].sort());
    expect(byPort.get('6222')).toEqual([{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'nats' } } }]);
    expect([...new Set(egressRules(nats).flatMap(ports))].sort()).toEqual([53, 6222]);
  });

  it('autoscales the gateway and sync-worker on CPU, and nothing fixes their replica count', () => {
    const targets = ofKind('HorizontalPodAutoscaler').map((hpa) => {
      const ref = hpa.spec?.scaleTargetRef;
      const target = workloads.find((object) => object.kind === ref?.kind && object.metadata.name === ref.name);
      expect(hpa.apiVersion).toBe('autoscaling/v2');
      expect(target).toBeDefined();
      expect(target?.spec?.replicas).toBeUndefined();
      expect(hpa.spec?.metrics?.map((metric) => metric.resource?.name)).toEqual(['cpu']);
      expect(hpa.spec?.minReplicas).toBeLessThanOrEqual(hpa.spec?.maxReplicas ?? 0);
      return ref?.name;
    });
    expect(targets.sort()).toEqual(['gateway', 'sync-worker']);
  });

  it('gives every workload that runs more than one pod a PodDisruptionBudget that selects its pods', () => {
    for (const budget of ofKind('PodDisruptionBudget')) {
      const selected = workloads.filter((object) => selects(budget.spec?.selector, podLabels(object)));
      expect([budget.metadata.name, selected.length]).toEqual([budget.metadata.name, 1]);
    }
    const multi = workloads.filter(
      (object) => (object.spec?.replicas ?? 1) > 1 || (hpaFor(object.metadata.name)?.spec?.maxReplicas ?? 1) > 1,
    );
    const unprotected = multi
      .filter((object) => !ofKind('PodDisruptionBudget').some((b) => selects(b.spec?.selector, podLabels(object))))
      .map((object) => object.metadata.name);
    expect(unprotected).toEqual([]);
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
    // Users are placed on shards by SHARD_COUNT: a pod count that differs strands or loses some.
    expect(env.find((variable) => variable.name === 'SHARD_COUNT')?.value).toBe(String(personalServer?.spec?.replicas));
  });

  it('runs NATS as three clustered servers with JetStream on their own volumes', () => {
    const nats = workload('nats');
    expect(nats?.kind).toBe('StatefulSet');
    expect(nats?.spec?.replicas).toBe(3);
    const claim = nats?.spec?.volumeClaimTemplates?.find((template) => template.metadata.name === 'data');
    expect(claim?.spec?.resources?.requests?.storage).toBeDefined();
    expect(nats?.spec?.template?.spec?.containers?.[0]?.volumeMounts).toContainEqual({
      name: 'data',
      mountPath: '/data',
    });
    const config = ofKind('ConfigMap').find((map) => map.metadata.name === 'nats-config')?.data?.['nats.conf'] ?? '';
    expect(config).toMatch(/store_dir: \/data/);
    for (const pod of ['nats-0', 'nats-1', 'nats-2']) expect(config).toContain(`nats://${pod}.nats-headless:6222`);
  });
});

describeKubernetes('deploy/witness (the audit log witness, apart from the platform)', () => {
  const objects = hasKubectl()
    ? parseAllDocuments(
        execFileSync('kubectl', ['kustomize', join(rootDir, 'deploy', 'witness')], { encoding: 'utf8' }),
      ).map((document) => document.toJS() as K8sObject)
    : [];
  const witness = objects.find((object) => object.kind === 'StatefulSet' && object.metadata.name === 'witness');
  const spec = witness?.spec?.template?.spec ?? {};
  const container = spec.containers?.find((c) => c.name === 'witness');

  it("runs in a namespace of its own, not the platform's", () => {
    expect(new Set(objects.map((object) => object.metadata.namespace))).toEqual(new Set(['context-gateway-witness']));
  });

  it('runs one witness on a volume of its own that outlives the pod, its key from a Secret as a 0600 copy', () => {
    expect(witness?.spec?.replicas).toBe(1);
    const claims = witness?.spec?.volumeClaimTemplates;
    expect(claims?.map((claim) => claim.metadata.name)).toEqual(['state']);
    const env = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value]));
    expect(container?.volumeMounts).toEqual(
      expect.arrayContaining([{ name: 'state', mountPath: env.WITNESS_STATE_DIR }]),
    );
    const install = spec.initContainers?.find((c) => c.name === 'install-signing-key');
    expect(JSON.stringify(install?.command)).toContain(`install -m 0600`);
    expect(JSON.stringify(install?.command)).toContain(env.WITNESS_SIGNING_KEY_FILE);
    expect(spec.volumes?.find((v) => v.name === 'signing-key-secret')?.secret?.secretName).toBe('witness-signing-key');
    expect(container?.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
  });

  it('is reached only by audit pods, on its port, and reaches nothing', () => {
    const policies = objects.filter((object) => object.kind === 'NetworkPolicy');
    expect(policies).toHaveLength(1);
    const [policy] = policies;
    expect(policy?.spec?.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(policy?.spec?.egress).toEqual([]);
    expect(policy?.spec?.ingress).toEqual([
      {
        from: [
          {
            namespaceSelector: {},
            podSelector: {
              matchLabels: { 'app.kubernetes.io/name': 'audit', 'app.kubernetes.io/component': 'audit' },
            },
          },
        ],
        ports: [{ protocol: 'TCP', port: 8087 }],
      },
    ]);
  });
});

describeKubernetes('deploy/overlays/prod specifically', () => {
  const objects = rendered?.get('prod') ?? [];

  it('ships no Secret and no Postgres: both come from outside the manifests', () => {
    expect(objects.filter((object) => object.kind === 'Secret').map((object) => object.metadata.name)).toEqual([]);
    expect(objects.filter((object) => object.metadata.name.includes('postgres'))).toEqual([]);
  });

  it('pins every image to a release tag', () => {
    const images = objects.flatMap((object) =>
      [...(object.spec?.template?.spec?.initContainers ?? []), ...(object.spec?.template?.spec?.containers ?? [])].map(
        (c) => c.image ?? '',
      ),
    );
    expect(images.length).toBeGreaterThan(0);
    const unpinned = images.filter((image) => !/:(\d+\.\d+\.\d+[\w.-]*)$|@sha256:[0-9a-f]{64}$/.test(image));
    expect(unpinned).toEqual([]);
  });

  it('runs at least two of every stateless service', () => {
    const single = objects
      .filter((object) => object.kind === 'Deployment')
      .filter((object) => {
        const hpa = objects.find(
          (o) => o.kind === 'HorizontalPodAutoscaler' && o.spec?.scaleTargetRef?.name === object.metadata.name,
        );
        return (hpa?.spec?.minReplicas ?? object.spec?.replicas ?? 1) < 2;
      })
      .map((object) => object.metadata.name);
    expect(single).toEqual([]);
  });
});

/**
 * The Kubernetes API's own schemas (kubernetes-models: generated from the OpenAPI of the
 * Kubernetes release it names), offline: a mistyped field, a string where an integer goes or
 * a missing required field fails here instead of at `kubectl apply`.
 */
async function validateAgainstKubernetes(object: K8sObject): Promise<string | undefined> {
  const [group, version] = object.apiVersion.includes('/')
    ? object.apiVersion.split('/')
    : [undefined, object.apiVersion];
  const path = group
    ? `kubernetes-models/${group}/${version}/${object.kind}`
    : `kubernetes-models/${version}/${object.kind}`;
  let model: Record<string, new (data: unknown) => { validate(): void }>;
  try {
    model = (await import(path)) as typeof model;
  } catch {
    return `${object.apiVersion} ${object.kind} is not a kind the Kubernetes API serves`;
  }
  const Kind = model[object.kind];
  if (!Kind) return `${object.apiVersion} ${object.kind} has no schema`;
  // kustomize folds long base64 values over lines; the API server's decoder skips the line
  // breaks, the schema's "byte" format does not.
  const data = object.kind === 'Secret' && object.data ? object.data : undefined;
  const normalized = data
    ? { ...object, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, v.replace(/\s+/g, '')])) }
    : object;
  try {
    new Kind(normalized).validate();
    return undefined;
  } catch (error) {
    return `${object.kind}/${object.metadata.name}: ${(error as Error).message}`;
  }
}

describeKubernetes.each(overlayNames)('deploy/overlays/%s against the Kubernetes API schemas', (overlay) => {
  it('renders only objects that validate against their kind', async () => {
    const problems: string[] = [];
    for (const object of rendered?.get(overlay) ?? []) {
      const problem = await validateAgainstKubernetes(object);
      if (problem) problems.push(problem);
    }
    expect(problems).toEqual([]);
  });

  it('would notice a broken object (the check is not vacuous)', async () => {
    const deployment = (rendered?.get(overlay) ?? []).find((object) => object.kind === 'Deployment');
    expect(deployment).toBeDefined();
    const broken = { ...deployment, spec: { ...deployment?.spec, replicas: 'two' } } as unknown as K8sObject;
    expect(await validateAgainstKubernetes(broken)).toMatch(/replicas/);
  });
});
