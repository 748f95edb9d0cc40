import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  AGENT_CONFIG_KEYS, CONFIGMAPS, CONVERSION_WEBHOOK, EDGE_TUNNEL_NODES_KEY, HEARTBEAT, PORTS, PROXY_CLIENT_HEALTH_PORT,
  PROXY_SERVICE_ACCOUNTS, RAVEN_CFG_KEYS, SYSTEM_NAMESPACE,
} from '@raven/api-types';
import { appCommand, WORKSPACE_ROOT } from '@raven/testbed';
import {
  APPS, OVERLAYS, componentOf, find, flagsOf, packageVersion, readManifests, renderOverlay, run, workloads,
  type App, type Container, type K8sObject, type Overlay, type Workload,
} from './support.ts';

/**
 * Acceptance 2 and the contracts between the manifests and the code: what each workload may do (privilege,
 * non-root, probes, resources, grace periods, disruption budgets, one ServiceAccount per app bound to the Roles in
 * k8s/base/rbac), that every flag in the manifests is one the app accepts, and that names and ports match
 * libs/api-types. Checked on every overlay's rendered output.
 */
const rendered = new Map<Overlay, K8sObject[]>();
const helpFlags = new Map<App, Set<string>>();

beforeAll(async () => {
  await Promise.all([
    ...OVERLAYS.map(async (o) => rendered.set(o, await renderOverlay(o))),
    ...APPS.map(async (app) => {
      const { command, args } = appCommand(app);
      const help = await run(command, [...args, '--help']);
      helpFlags.set(app, new Set([...help.matchAll(/^ {2}--([a-z0-9-]+)/gm)].map((m) => m[1]!)));
    }),
  ]);
});

const OUR_APPS = new Set<string>(APPS);
const COMPONENTS = ['gateway-pickup', 'tunnel-agent', 'proxy-server', 'proxy-client', 'proxy-dns'];
const container = (w: Workload): Container => w.spec.template.spec.containers[0]!;
const workload = (overlay: Overlay, name: string) => workloads(rendered.get(overlay)!).find((w) => w.metadata.name === name);
const portOf = (c: Container, name: string) => c.ports?.find((p) => p.name === name)?.containerPort;
const addrPort = (addr: string | undefined) => Number(addr?.split(':').pop());

describe.each(OVERLAYS)('overlay %s: workload policy', (overlay) => {
  const objects = () => rendered.get(overlay)!;

  it('only tunnel-agent is privileged, runs as root or shares the host network beyond the proxies', () => {
    for (const w of workloads(objects())) {
      const pod = w.spec.template.spec;
      for (const c of pod.containers) {
        const sc = c.securityContext ?? {};
        if (componentOf(w) === 'tunnel-agent') {
          expect(sc.privileged, w.metadata.name).toBe(true);
          expect(sc.capabilities?.add).toEqual(['NET_ADMIN', 'NET_RAW']);
          continue;
        }
        expect(sc.privileged ?? false, w.metadata.name).toBe(false);
        expect(sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot, w.metadata.name).toBe(true);
        expect(sc.runAsUser ?? pod.securityContext?.runAsUser, w.metadata.name).toBeGreaterThan(0);
        expect(sc.allowPrivilegeEscalation, w.metadata.name).toBe(false);
        expect(sc.readOnlyRootFilesystem, w.metadata.name).toBe(true);
        expect(sc.capabilities, w.metadata.name).toEqual({ drop: ['ALL'] });
        expect((pod.volumes ?? []).filter((v) => v.hostPath), w.metadata.name).toEqual([]);
      }
      const hostNetwork = ['tunnel-agent', 'proxy-server', 'proxy-client'].includes(componentOf(w));
      expect(pod.hostNetwork ?? false, w.metadata.name).toBe(hostNetwork);
    }
  });

  it('every workload has probes, requests and limits, a grace period, and labels', () => {
    const ws = workloads(objects());
    expect(ws.length).toBeGreaterThanOrEqual(2);
    for (const w of ws) {
      const pod = w.spec.template.spec;
      expect(COMPONENTS).toContain(componentOf(w));
      expect(w.metadata.labels?.['app.kubernetes.io/part-of']).toBe('raven');
      expect(w.metadata.labels?.['app.kubernetes.io/name']).toBe(w.metadata.name);
      expect(w.spec.template.metadata.labels).toMatchObject({ ...w.spec.selector.matchLabels, 'app.kubernetes.io/component': componentOf(w), 'app.kubernetes.io/part-of': 'raven' });
      expect(pod.terminationGracePeriodSeconds, w.metadata.name).toBeGreaterThanOrEqual(20);
      for (const c of pod.containers) {
        expect(c.livenessProbe?.httpGet?.path, w.metadata.name).toMatch(/^\/health/);
        expect(c.readinessProbe?.httpGet?.path, w.metadata.name).toMatch(/^\/(readyz|ready)$/);
        expect(c.resources?.requests, w.metadata.name).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
        expect(c.resources?.limits, w.metadata.name).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
      }
    }
  });

  it('images are pinned: our apps at the release (or dev) tag, CoreDNS at a version', () => {
    for (const w of workloads(objects())) {
      const c = container(w);
      if (OUR_APPS.has(componentOf(w))) {
        const want = overlay === 'dev' ? `raven-ts/${componentOf(w)}:dev` : `ghcr.io/raven-ts/${componentOf(w)}:${packageVersion()}`;
        expect(c.image).toBe(want);
        expect(c.imagePullPolicy).toBe(overlay === 'dev' ? 'Never' : 'IfNotPresent');
      } else {
        expect(c.image).toMatch(/^registry\.k8s\.io\/coredns\/coredns:v\d+\.\d+\.\d+$/);
      }
    }
  });

  it('Deployments have a PodDisruptionBudget for their Pods', () => {
    const pdbs = objects().filter((o) => o.kind === 'PodDisruptionBudget') as Array<K8sObject & { spec: { selector: { matchLabels: Record<string, string> }; minAvailable?: number; maxUnavailable?: number } }>;
    const deployments = workloads(objects()).filter((w) => w.kind === 'Deployment');
    expect(deployments.length).toBeGreaterThan(0);
    for (const d of deployments) {
      const pdb = pdbs.find((p) => JSON.stringify(p.spec.selector.matchLabels) === JSON.stringify(d.spec.selector.matchLabels));
      expect(pdb, d.metadata.name).toBeDefined();
      expect((pdb!.spec.minAvailable ?? 0) + (pdb!.spec.maxUnavailable ?? 0), d.metadata.name).toBe(1);
    }
    expect(pdbs).toHaveLength(deployments.length);
  });

  it('one ServiceAccount per app, bound to its Roles', () => {
    const ws = workloads(objects());
    const accounts = ws.map((w) => w.spec.template.spec.serviceAccountName);
    expect(new Set(accounts).size).toBe(ws.length);
    const bindings = objects().filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding') as Array<K8sObject & { roleRef: { kind: string; name: string }; subjects: Array<{ kind: string; name: string; namespace: string }> }>;
    for (const sa of accounts) {
      expect(find(objects(), 'ServiceAccount', sa!), sa).toBeDefined();
      const mine = bindings.filter((b) => b.subjects.some((s) => s.kind === 'ServiceAccount' && s.name === sa && s.namespace === SYSTEM_NAMESPACE));
      expect(mine.length, sa).toBeGreaterThan(0);
      for (const b of mine) expect(find(objects(), b.roleRef.kind, b.roleRef.name), `${b.metadata.name} -> ${b.roleRef.name}`).toBeDefined();
    }
  });

  it('every argument is a flag the app accepts', () => {
    for (const w of workloads(objects()).filter((x) => OUR_APPS.has(componentOf(x)))) {
      const known = helpFlags.get(componentOf(w) as App)!;
      for (const flag of flagsOf(container(w).args).keys()) expect(known, `${w.metadata.name} --${flag}`).toContain(flag);
    }
  });

  it('ships no PSK: the Secret is only referenced', () => {
    expect(objects().filter((o) => o.kind === 'Secret')).toEqual([]);
    const agent = workload(overlay, 'raven-tunnel-agent');
    if (!agent) return;
    const psk = agent.spec.template.spec.volumes?.find((v) => v.secret)?.secret;
    expect(psk?.secretName).toBe('raven-agent-secret');
    expect(psk?.optional).toBe(overlay !== 'libreswan');
    expect(flagsOf(container(agent).args).get('vpn-driver')).toBe(overlay === 'libreswan' ? 'libreswan' : 'wireguard');
  });
});

describe('what each overlay installs', () => {
  const modes = (o: Overlay) => (find(rendered.get(o)!, 'ConfigMap', CONFIGMAPS.ravenConfig) as K8sObject & { data: Record<string, string> }).data;
  const components = (o: Overlay) => workloads(rendered.get(o)!).map(componentOf).sort();

  it.each([
    ['wireguard', 'true', 'true', COMPONENTS],
    ['libreswan', 'true', 'true', COMPONENTS],
    ['dev', 'true', 'true', COMPONENTS],
    ['box', 'true', 'true', COMPONENTS],
    ['l3-only', 'true', 'false', ['gateway-pickup', 'tunnel-agent']],
    ['l7-only', 'false', 'true', ['gateway-pickup', 'proxy-client', 'proxy-dns', 'proxy-server']],
  ] as const)('%s: enable-l3-tunnel %s, enable-l7-proxy %s', (overlay, l3, l7, want) => {
    expect(modes(overlay)).toEqual({ [RAVEN_CFG_KEYS.l3Tunnel]: l3, [RAVEN_CFG_KEYS.l7Proxy]: l7 });
    expect(components(overlay)).toEqual([...want].sort());
  });

  it('proxy-server scales on its own (l7-only: 2 replicas), gateway-pickup runs 2 with leader election', () => {
    expect(workload('wireguard', 'raven-proxy-server')!.spec.replicas).toBe(1);
    expect(workload('l7-only', 'raven-proxy-server')!.spec.replicas).toBe(2);
    const pickup = workload('wireguard', 'raven-gateway-pickup')!;
    expect(pickup.spec.replicas).toBe(2);
    expect(flagsOf(container(pickup).args).get('leader-elect')).toBe('true');
  });

  it('dev logs at debug level; the others keep the default', () => {
    for (const overlay of OVERLAYS) {
      for (const w of workloads(rendered.get(overlay)!).filter((x) => OUR_APPS.has(componentOf(x)))) {
        expect(flagsOf(container(w).args).get('log-level'), `${overlay} ${w.metadata.name}`).toBe(overlay === 'dev' ? 'debug' : undefined);
      }
    }
  });
});

describe('names and ports match libs/api-types and upstream', () => {
  const objects = () => rendered.get('wireguard')!;

  it('the conversion webhook Service is the one the CRD names, on the port the app serves', () => {
    const svc = find(objects(), 'Service', CONVERSION_WEBHOOK.serviceName) as K8sObject & { spec: { ports: Array<{ port: number; targetPort: string }> } };
    expect(svc.metadata.namespace).toBe(CONVERSION_WEBHOOK.namespace);
    expect(svc.spec.ports).toEqual([expect.objectContaining({ port: CONVERSION_WEBHOOK.servicePort, targetPort: 'webhook' })]);
    const c = container(workload('wireguard', 'raven-gateway-pickup')!);
    expect(portOf(c, 'webhook')).toBe(CONVERSION_WEBHOOK.containerPort);
    expect(flagsOf(c.args).get('webhook-port')).toBe(String(CONVERSION_WEBHOOK.containerPort));
  });

  it('raven-agent-config states the ports the proxy and the tunnel really use', () => {
    const cfg = (find(objects(), 'ConfigMap', CONFIGMAPS.agentConfig) as K8sObject & { data: Record<string, string> }).data;
    expect(Object.keys(cfg).sort()).toEqual(Object.values(AGENT_CONFIG_KEYS).sort());
    const server = container(workload('wireguard', 'raven-proxy-server')!);
    const flags = flagsOf(server.args);
    expect([flags.get('tunnel-port'), flags.get('https-port'), flags.get('http-port')].map(Number)).toEqual([
      addrPort(cfg[AGENT_CONFIG_KEYS.proxyExternalAddr]), addrPort(cfg[AGENT_CONFIG_KEYS.proxyInternalSecureAddr]), addrPort(cfg[AGENT_CONFIG_KEYS.proxyInternalInsecureAddr]),
    ]);
    expect([portOf(server, 'tunnel'), portOf(server, 'https'), portOf(server, 'http'), portOf(server, 'health')]).toEqual([
      PORTS.proxyTunnel, PORTS.proxyInternalSecure, PORTS.proxyInternalInsecure, PORTS.proxyMetrics,
    ]);
    const agent = container(workload('wireguard', 'raven-tunnel-agent')!);
    expect([portOf(agent, 'tunnel'), portOf(agent, 'probe'), portOf(agent, 'health')]).toEqual([addrPort(cfg[AGENT_CONFIG_KEYS.tunnelBindAddr]), PORTS.tunnelProbe, PORTS.health]);
    expect(PORTS.tunnel).toBe(addrPort(cfg[AGENT_CONFIG_KEYS.tunnelBindAddr]));
    expect(portOf(container(workload('wireguard', 'raven-proxy-client')!), 'health')).toBe(PROXY_CLIENT_HEALTH_PORT);
    expect(portOf(container(workload('wireguard', 'raven-gateway-pickup')!), 'health')).toBe(PORTS.health);
  });

  it('health flags name the probed ports', () => {
    for (const w of workloads(objects()).filter((x) => OUR_APPS.has(componentOf(x)))) {
      const c = container(w);
      expect(flagsOf(c.args).get('health-port'), w.metadata.name).toBe(String(portOf(c, 'health')));
      expect(c.livenessProbe?.httpGet?.port).toBe('health');
    }
  });

  it('the proxy ServiceAccounts are the ones the CSR approver trusts', () => {
    expect(workload('wireguard', 'raven-proxy-server')!.spec.template.spec.serviceAccountName).toBe(PROXY_SERVICE_ACCOUNTS.server);
    expect(workload('wireguard', 'raven-proxy-client')!.spec.template.spec.serviceAccountName).toBe(PROXY_SERVICE_ACCOUNTS.client);
  });

  it('raven-proxy-dns serves the edge-tunnel-nodes file it mounts, which gateway-pickup (not the manifests) owns', () => {
    expect(find(objects(), 'ConfigMap', CONFIGMAPS.edgeTunnelNodes)).toBeUndefined();
    const dns = workload('wireguard', 'raven-proxy-dns')!;
    const hosts = dns.spec.template.spec.volumes?.find((v) => v.configMap?.name === CONFIGMAPS.edgeTunnelNodes) as { configMap: { optional: boolean; items: Array<{ key: string; path: string }> } } | undefined;
    expect(hosts?.configMap.optional).toBe(true);
    expect(hosts?.configMap.items).toEqual([{ key: EDGE_TUNNEL_NODES_KEY, path: EDGE_TUNNEL_NODES_KEY }]);
    const corefile = (find(objects(), 'ConfigMap', 'raven-proxy-dns') as K8sObject & { data: { Corefile: string } }).data.Corefile;
    expect(corefile).toContain(`hosts /etc/edge/${EDGE_TUNNEL_NODES_KEY} {`);
    const svc = find(objects(), 'Service', 'raven-proxy-dns') as K8sObject & { spec: { ports: Array<{ port: number; protocol: string }> } };
    expect(svc.spec.ports.filter((p) => p.port === 53).map((p) => p.protocol).sort()).toEqual(['TCP', 'UDP']);
  });

  it('the base lists every RBAC file, and nothing outside kube-system but the heartbeat namespace', () => {
    const rbacDir = join(WORKSPACE_ROOT, 'k8s/base/rbac');
    const fromFiles = readdirSync(rbacDir).filter((f) => f.endsWith('.yaml')).flatMap((f) => readManifests(join(rbacDir, f)));
    const keys = new Set(objects().map((o) => `${o.kind}/${o.metadata.name}`));
    for (const o of fromFiles) expect(keys, `${o.kind}/${o.metadata.name}`).toContain(`${o.kind}/${o.metadata.name}`);
    const namespaces = new Set(objects().map((o) => o.metadata.namespace).filter(Boolean));
    expect([...namespaces].sort()).toEqual([SYSTEM_NAMESPACE, HEARTBEAT.namespace].sort());
  });
});
