// The Kubernetes manifests (deploy/kubernetes) and docker-compose.yml run the same
// image with the same settings: every variable they set is one tiergate reads, the
// policy is mounted as a directory (so an update reaches the file), the assertion key
// lands where the gateway reads it, and what the manifests set is a configuration
// tiergate accepts. Schema validation of the manifests: tests/integration/deploy-kubeconform.test.ts.
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { configSchema, loadConfig } from '../../src/config.js';
import { ASSERTION_KEY_FILE } from '../../src/gateway/assertion-signer.js';
import { REPO_ROOT } from '../../src/shared/repo-root.js';
import { useCleanup } from '../support/cleanup.js';

useCleanup();

const DIR = join(REPO_ROOT, 'deploy', 'kubernetes');

// Only the fields these checks read; the schemas (integration test) check the rest.
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string; key: string } };
}
interface Probe {
  httpGet?: { path: string; port: string | number };
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: { name: string; containerPort: number }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; capabilities?: { drop?: string[] } };
  volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
}
interface Volume {
  name: string;
  configMap?: { name: string };
  secret?: { secretName: string; defaultMode?: number; items?: { key: string; path: string }[] };
  emptyDir?: object;
}
interface PodSpec {
  enableServiceLinks?: boolean;
  automountServiceAccountToken?: boolean;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; fsGroup?: number };
  initContainers?: Container[];
  containers: Container[];
  volumes?: Volume[];
}
interface Resource {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  spec?: {
    replicas?: number;
    selector?: { matchLabels?: Record<string, string> } & Record<string, string>;
    minAvailable?: number;
    ports?: { name: string; port: number; targetPort: string | number }[];
    template?: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec };
  };
}

function readResources(file: string): Resource[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    return d.toJS() as Resource;
  });
}

const kustomization = parse(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8')) as Record<string, unknown>;
const resourceFiles = kustomization.resources as string[];
const applied = resourceFiles.flatMap((f) => readResources(join(DIR, f)));
const secrets = readResources(join(DIR, 'examples', 'secrets.example.yaml'));

function one(kind: string, name: string, from: Resource[] = applied): Resource {
  const found = from.filter((r) => r.kind === kind && r.metadata.name === name);
  expect(found, `${kind} ${name}`).toHaveLength(1);
  return found[0]!;
}
const gateway = one('Deployment', 'tiergate-gateway');
const tenantService = one('Deployment', 'tiergate-tenant-service');
const deployments = [gateway, tenantService];
const podOf = (d: Resource) => d.spec!.template!.spec;
const containersOf = (d: Resource) => [...(podOf(d).initContainers ?? []), ...podOf(d).containers];
const gatewayContainer = podOf(gateway).containers.find((c) => c.name === 'gateway')!;

/** The environment a container starts with (ConfigMaps and literal values; secrets by their example value). */
function environment(c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    if (from.configMapRef) Object.assign(env, one('ConfigMap', from.configMapRef.name).data);
    if (from.secretRef) Object.assign(env, one('Secret', from.secretRef.name, secrets).stringData);
  }
  for (const v of c.env ?? []) {
    const ref = v.valueFrom?.secretKeyRef;
    env[v.name] = v.value ?? (ref ? one('Secret', ref.name, secrets).stringData![ref.key]! : '');
  }
  return env;
}

const known = new Set(Object.keys(configSchema.shape));
/** Names tiergate reads, plus the standard ones Node and OpenTelemetry read themselves. */
const isKnownName = (name: string) => known.has(name) || /^(?:OTEL|NODE)_[A-Z0-9_]+$/.test(name);

describe('deploy/kubernetes', () => {
  it('applies every manifest of the folder (the Secrets are created by hand, not applied)', () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    expect([...resourceFiles].sort()).toEqual(files.sort());
    // Plain resources only: what kubectl applies is exactly these files.
    expect(Object.keys(kustomization).sort()).toEqual(['apiVersion', 'kind', 'resources']);
    expect(applied.filter((r) => r.kind === 'Secret')).toEqual([]);
  });

  it('sets only variables tiergate (or Node, or OpenTelemetry) reads', () => {
    const names = new Set<string>();
    for (const d of deployments) for (const c of containersOf(d)) for (const v of c.env ?? []) names.add(v.name);
    for (const r of applied.filter((r) => r.kind === 'ConfigMap' && r.metadata.name !== 'tiergate-policy')) {
      for (const k of Object.keys(r.data ?? {})) names.add(k);
    }
    for (const r of secrets) for (const k of Object.keys(r.stringData ?? {})) if (k === k.toUpperCase()) names.add(k);
    expect(names.size).toBeGreaterThan(10);
    expect([...names].filter((n) => !isKnownName(n))).toEqual([]);
  });

  it('names only Secrets, keys and ConfigMaps that exist (in the example Secrets and the kustomization)', () => {
    for (const d of deployments) {
      for (const c of containersOf(d)) {
        for (const v of c.env ?? []) {
          const ref = v.valueFrom?.secretKeyRef;
          if (ref) expect(Object.keys(one('Secret', ref.name, secrets).stringData ?? {}), `${v.name}`).toContain(ref.key);
          // A secret's key is the variable it becomes, so a key is never exposed under another name.
          if (ref) expect(ref.key).toBe(v.name);
        }
        for (const from of c.envFrom ?? []) if (from.configMapRef) one('ConfigMap', from.configMapRef.name);
      }
      for (const v of podOf(d).volumes ?? []) {
        if (v.configMap) one('ConfigMap', v.configMap.name);
        if (v.secret) for (const item of v.secret.items ?? []) expect(Object.keys(one('Secret', v.secret.secretName, secrets).stringData ?? {})).toContain(item.key);
      }
    }
  });

  it('is a configuration tiergate accepts once AUTH_ISSUERS is set, and refuses without it', () => {
    for (const d of deployments) {
      const env = environment(podOf(d).containers[0]!);
      expect(() => loadConfig(env), d.metadata.name).toThrow(/AUTH_ISSUERS: production requires at least one configured issuer/);
      const issuers = JSON.stringify([{ issuer: 'https://idp.example/', audiences: ['tiergate'], algorithms: ['RS256'], jwksUrl: 'https://idp.example/jwks.json' }]);
      const config = loadConfig({ ...env, AUTH_ISSUERS: issuers });
      expect(config.NODE_ENV).toBe('production');
      expect(config.DATABASE_URL).toMatch(/^postgres:\/\//);
    }
    const config = loadConfig({ ...environment(gatewayContainer), AUTH_ISSUERS: '[]', NODE_ENV: 'test' });
    expect(config.GATEWAY_HOST).toBe('0.0.0.0');
    expect(config.METRICS_HOST).toBe('0.0.0.0');
    expect(config.GATEWAY_WORKERS).toBe(1);
    expect(config.REDIS_URL).toMatch(/^redis:\/\//);
    expect(config.OPENFGA_API_TOKEN).toBeDefined();
    expect(config.UPSTREAM_URLS).toEqual({ reports: 'http://tiergate-tenant-service:8090' });
  });

  it('runs at least two gateways, probed on /readyz and /healthz, with limits, non-root and read-only', () => {
    expect(gateway.spec!.replicas).toBeGreaterThanOrEqual(2);
    const port = (name: string) => gatewayContainer.ports!.find((p) => p.name === name)!.containerPort;
    const config = loadConfig({ ...environment(gatewayContainer), NODE_ENV: 'test', AUTH_ISSUERS: '[]' });
    expect(port('http')).toBe(config.GATEWAY_PORT);
    expect(gatewayContainer.readinessProbe!.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(gatewayContainer.livenessProbe!.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(gatewayContainer.startupProbe!.httpGet).toEqual({ path: '/healthz', port: 'http' });
    for (const d of deployments) {
      const pod = podOf(d);
      // Service links would set e.g. TENANT_SERVICE_PORT=tcp://…, overriding tiergate's own variable.
      expect(pod.enableServiceLinks).toBe(false);
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
      for (const c of containersOf(d)) {
        expect(c.securityContext, c.name).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
        expect(Object.keys(c.resources?.requests ?? {}).sort(), c.name).toEqual(['cpu', 'memory']);
        expect(c.resources?.limits?.memory, c.name).toBeDefined();
      }
    }
  });

  it('exposes the metrics port the gateway listens on, and announces it for scraping', () => {
    const config = loadConfig({ ...environment(gatewayContainer), NODE_ENV: 'test', AUTH_ISSUERS: '[]' });
    expect(gatewayContainer.ports!.find((p) => p.name === 'metrics')!.containerPort).toBe(config.METRICS_PORT);
    expect(gateway.spec!.template!.metadata.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': String(config.METRICS_PORT),
      'prometheus.io/path': '/metrics',
    });
    const service = one('Service', 'tiergate-gateway');
    expect(service.spec!.ports!.map((p) => p.targetPort).sort()).toEqual(['http', 'metrics']);
  });

  it('selects its own pods with each Service and PodDisruptionBudget', () => {
    for (const d of deployments) {
      const labels = d.spec!.template!.metadata.labels;
      expect(labels).toMatchObject(d.spec!.selector!.matchLabels!);
      const service = one('Service', d.metadata.name);
      expect(labels).toMatchObject(service.spec!.selector as Record<string, string>);
      const pdb = one('PodDisruptionBudget', d.metadata.name);
      expect(pdb.spec!.selector!.matchLabels).toEqual(d.spec!.selector!.matchLabels);
      expect(pdb.spec!.minAvailable).toBeLessThan(d.spec!.replicas!);
    }
  });

  it('mounts the policy ConfigMap as a directory holding policy/routes.yaml byte for byte', () => {
    const policy = one('ConfigMap', 'tiergate-policy');
    expect(
      policy.data!['routes.yaml'],
      'deploy/kubernetes/policy.yaml must carry policy/routes.yaml unchanged (indent the file by four spaces under `routes.yaml: |`)',
    ).toBe(readFileSync(join(REPO_ROOT, 'policy', 'routes.yaml'), 'utf8'));
    const volume = podOf(gateway).volumes!.find((v) => v.configMap?.name === 'tiergate-policy')!;
    const mount = gatewayContainer.volumeMounts!.find((m) => m.name === volume.name)!;
    // A subPath mount is a copy made at start: ConfigMap updates never reach it.
    expect(mount.subPath).toBeUndefined();
    expect(environment(gatewayContainer).POLICY_FILE).toBe(posix.join(mount.mountPath, 'routes.yaml'));
  });

  it('puts the shared assertion key where the gateway reads it, readable by its user alone', () => {
    const env = environment(gatewayContainer);
    const keyPath = posix.join(env.TIERGATE_DATA_DIR!, ASSERTION_KEY_FILE);
    const init = podOf(gateway).initContainers!.find((c) => c.name === 'assertion-key')!;
    const secretVolume = podOf(gateway).volumes!.find((v) => v.secret?.secretName === 'tiergate-assertion-key')!;
    const secretMount = init.volumeMounts!.find((m) => m.name === secretVolume.name)!;
    const item = secretVolume.secret!.items!.find((i) => i.key === ASSERTION_KEY_FILE)!;
    expect(init.command).toEqual(['install', '-m', '0600', posix.join(secretMount.mountPath, item.path), keyPath]);
    // The data folder is one volume, seen by both containers at the same path.
    const dataInit = init.volumeMounts!.find((m) => m.mountPath === env.TIERGATE_DATA_DIR)!;
    const dataMain = gatewayContainer.volumeMounts!.find((m) => m.mountPath === env.TIERGATE_DATA_DIR)!;
    expect(dataInit.name).toBe(dataMain.name);
    expect(podOf(gateway).volumes!.find((v) => v.name === dataMain.name)!.emptyDir).toBeDefined();
    // The gateway never writes its key into the Secret: mounted only into the init container.
    expect(gatewayContainer.volumeMounts!.map((m) => m.name)).not.toContain(secretVolume.name);
    expect(init.image).toBe(gatewayContainer.image);
  });

  it('runs the image version package.json names, with the Dockerfile entry points', () => {
    const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const scripts = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    for (const d of deployments) for (const c of containersOf(d)) expect(c.image).toBe(`tiergate:${version}`);
    expect(gatewayContainer.command!.join(' ')).toBe(scripts['start:gateway']);
    expect(podOf(tenantService).containers[0]!.command!.join(' ')).toBe(scripts['start:tenant-service']);
  });
});

describe('docker-compose.yml', () => {
  interface ComposeService {
    image?: string;
    command?: string[];
    environment?: Record<string, string>;
    volumes?: string[];
    read_only?: boolean;
    cap_drop?: string[];
  }
  const compose = parse(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, ComposeService> };
  const services = { gateway: compose.services.gateway!, 'tenant-service': compose.services['tenant-service']! };

  it('runs the image and commands of the manifests', () => {
    expect(services.gateway.image).toBe(gatewayContainer.image);
    expect(services['tenant-service'].image).toBe(podOf(tenantService).containers[0]!.image);
    expect(services.gateway.command).toEqual(gatewayContainer.command);
    expect(services['tenant-service'].command).toEqual(podOf(tenantService).containers[0]!.command);
  });

  it('sets only variables tiergate reads, and every one the manifests set', () => {
    for (const [name, service] of Object.entries(services)) {
      const names = Object.keys(service.environment ?? {});
      expect(names.filter((n) => !isKnownName(n)), name).toEqual([]);
    }
    const k8s = Object.keys(environment(gatewayContainer));
    expect(k8s.filter((n) => !(n in services.gateway.environment!))).toEqual([]);
  });

  it('mounts the policy folder where POLICY_FILE points, as the manifests do, and runs read-only', () => {
    const env = services.gateway.environment!;
    expect(env.POLICY_FILE).toBe(environment(gatewayContainer).POLICY_FILE);
    expect(env.TIERGATE_DATA_DIR).toBe(environment(gatewayContainer).TIERGATE_DATA_DIR);
    expect(services.gateway.volumes).toContain(`./policy:${posix.dirname(env.POLICY_FILE!)}:ro`);
    for (const service of Object.values(services)) {
      expect(service.read_only).toBe(true);
      expect(service.cap_drop).toEqual(['ALL']);
    }
  });
});
