import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubeClient } from '@raven/controller-kit';
import {
  adminClient, binaryPath, CLOUD_MEMBER_PUBLIC_IP, CONFLICTING_IP, EDGE_WORKER_LABEL, kubectl, kubectlUntil, leftoverBoxCgroups, podMatrixFailures, podRows, probeContainer,
  probeDaemonSet, RavenBox, realWalkthroughTopology, runningPods, startCluster, TSX_LOADER, uninstallRaven, waitFor, walkthroughBusybox, WALKTHROUGH_NODES, WORKSPACE_ROOT,
  type Cluster, type ClusterInfo, type InstallMethod,
} from '@raven/testbed';

/**
 * The walkthrough on real nodes, with Raven running as Pods of its own images: kubelet + containerd + CNI on every box
 * node, kube-scheduler placing pods, kube-proxy for ClusterIPs, and the real kube-apiserver reaching kubelets through
 * Raven's L7 path. The box builds the four images from their Dockerfiles (cached), imports them into every node's
 * containerd and installs Raven as the README says: the PSK Secret, the node labels, `kubectl apply --server-side -k
 * k8s/overlays/box`, the Gateways. Every command below is the user's own kubectl. A fourth edge domain (a node in no
 * Gateway) reuses hangzhou's gateway node's InternalIP, for section 2.3. Halfway, Raven is uninstalled with `kubectl
 * delete -k` and installed again with `helm install`; the node and apiserver faults run on that release, and `helm
 * uninstall` ends it. Its own control plane, which the faults stop; Raven's gateway-pickup Pods serve the CRD's
 * conversion webhook.
 */
let controlPlane: Cluster;
let cluster: ClusterInfo;
const kc = (args: string[], input?: string) => kubectl(cluster.kubeconfig, args, input);
let rb: RavenBox;
let kube: KubeClient;
const started = Date.now();
const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

const { hzGateway: HZ_GATEWAY, hzMember: HZ_MEMBER, qdMember: QD_MEMBER, lone: LONE, cloudMember: CLOUD_MEMBER } = WALKTHROUGH_NODES;
const KUSTOMIZE: InstallMethod = { kind: 'kustomize' };
// Node IPs are routed between domains too (README, install step 4), which the walkthrough's host-network ping needs.
const HELM: InstallMethod = { kind: 'helm', values: { 'tunnelAgent.forwardNodeIP': 'true' } };
/** Nodes whose kernel is no longer theirs to clean: the fault test stops hangzhou's gateway node for good. */
const stoppedNodes = new Set<string>();
/** Bounds from measurement on this machine (the README reports the figures): see the tests that use them. */
const AGENT_POD_OUTAGE_LIMIT_MS = 10_000;
const PROXY_SCALE_WINDOW_LIMIT_MS = 6_000;

interface RavenPod { name: string; node: string; ready: boolean; phase: string; restarts: number }
async function ravenPods(): Promise<RavenPod[]> {
  const list = JSON.parse(await kc(['-n', 'kube-system', 'get', 'pods', '-o', 'json'])) as {
    items: { metadata: { name: string; deletionTimestamp?: string }; spec: { nodeName?: string }; status: { phase?: string; conditions?: { type: string; status: string }[]; containerStatuses?: { restartCount: number }[] } }[];
  };
  return list.items.filter((p) => p.metadata.name.startsWith('raven-') && !p.metadata.deletionTimestamp).map((p) => ({
    name: p.metadata.name, node: p.spec.nodeName ?? '', phase: p.status.phase ?? '',
    ready: p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    restarts: (p.status.containerStatuses ?? []).reduce((n, c) => n + c.restartCount, 0),
  }));
}
const podsOf = async (prefix: string) => (await ravenPods()).filter((p) => p.name.startsWith(prefix));

function ravenctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const program = process.env.RAVEN_APP_MODE === 'bundle' ? [join(WORKSPACE_ROOT, 'dist/apps/ravenctl/main.js')] : ['--import', TSX_LOADER, join(WORKSPACE_ROOT, 'apps/ravenctl/src/main.ts')];
  return new Promise((resolve) => {
    execFile(process.execPath, [...program, ...args], { cwd: WORKSPACE_ROOT, env: { PATH: process.env.PATH, HOME: '/nonexistent', KUBECONFIG: cluster.kubeconfig }, timeout: 150_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0, stdout, stderr });
    });
  });
}

/** The walkthrough's `kubectl get pod -n kube-system | grep raven`, and what the manifests promise of it. */
async function expectRavenPodsAsPlaced(): Promise<void> {
  console.log((await kc(['-n', 'kube-system', 'get', 'pods', '-o', 'wide'])).split('\n').filter((l) => /^NAME|raven/.test(l)).join('\n'));
  const pods = await ravenPods();
  const count = (prefix: string) => pods.filter((p) => p.name.startsWith(prefix)).length;
  expect(count('raven-gateway-pickup-')).toBe(2);
  expect(pods.filter((p) => p.name.startsWith('raven-tunnel-agent-')).map((p) => p.node).sort()).toEqual(rb.box.nodes.map((n) => n.name).sort());
  expect(count('raven-proxy-server-')).toBe(1);
  // proxy-client where the README's labels put it: the other Gateways' proxy endpoints and the node in no Gateway.
  expect(count('raven-proxy-client-')).toBe(3);
  expect(count('raven-proxy-dns-')).toBe(2);
  expect(pods.filter((p) => p.phase !== 'Running' || !p.ready).map((p) => p.name)).toEqual([]);
  const leader = await kc(['-n', 'kube-system', 'get', 'lease', 'raven-gateway-pickup', '-o', 'jsonpath={.spec.holderIdentity}']);
  expect(pods.some((p) => p.name.startsWith('raven-gateway-pickup-') && leader.startsWith(p.name))).toBe(true);
}

/** `ravenctl verify`: the pod matrix, 3000-byte pings, ClusterIPs across domains and L7 to every edge node by name. */
async function expectVerifyPasses(): Promise<void> {
  const r = await ravenctl(['verify', '-o', 'json']);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  const rows = (JSON.parse(r.stdout) as { rounds: { rows: { kind: string }[] }[] }).rounds[0]!.rows;
  expect(new Set(rows.map((row) => row.kind))).toEqual(new Set(['pod', 'large', 'service', 'l7']));
}

/**
 * Until every edge kubelet answers the apiserver's node proxy (L7 by node name), and it is that node's kubelet: two
 * edge nodes share an InternalIP, so an answer reached by address instead of through the proxy could be the other's.
 */
async function waitL7(timeoutMs: number): Promise<void> {
  const edge = rb.box.nodes.filter((n) => n.domain !== 'cloud' && !stoppedNodes.has(n.name)).map((n) => n.name);
  let answers: string[] = [];
  await waitFor('the apiserver reaching every edge kubelet through the L7 proxy', async () => {
    answers = await Promise.all(edge.map(async (n) => {
      const metrics = await kc(['get', '--raw', `/api/v1/nodes/${n}/proxy/metrics`]).catch((err: unknown) => String(err));
      return metrics.includes(`kubelet_node_name{node="${n}"} 1`) ? 'ok' : `${n}: ${metrics.slice(0, 300)}`;
    }));
    return answers.every((a) => a === 'ok');
  }, timeoutMs, 500).catch((err: unknown) => {
    throw new Error(`${String(err)}\n${answers.join('\n')}`);
  });
}

/** The garbage collector deletes a dependent whose owner goes (the cascade that helm uninstall relies on). */
async function expectGarbageCollectorCascades(): Promise<void> {
  const name = `gc-probe-${Date.now()}`;
  await waitFor('the apiserver takes the probe owner', () => kc(['-n', 'default', 'create', 'configmap', name]).then(() => true, () => false), 30_000, 500);
  const uid = (await kc(['-n', 'default', 'get', 'configmap', name, '-o', 'jsonpath={.metadata.uid}'])).trim();
  await kc(['-n', 'default', 'apply', '-f', '-'], JSON.stringify({
    apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${name}-dependent`, namespace: 'default', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name, uid }] },
  }));
  const t = Date.now();
  await kc(['-n', 'default', 'delete', 'configmap', name, '--wait=false']);
  await waitFor('the garbage collector deleting the probe\'s dependent', async () => !(await kc(['-n', 'default', 'get', 'configmap', '-o', 'name'])).includes(`${name}-dependent`), 60_000, 250);
  console.log(`garbage collector cascade after the control-plane restart: ${seconds(t)}`);
}

/** Why Raven Pods still exist: each one's state, and what its node's kubelet and containerd last said of it. */
async function stuckPodReport(): Promise<string> {
  const list = JSON.parse(await kc(['-n', 'kube-system', 'get', 'pods', '-l', 'app.kubernetes.io/part-of=raven', '-o', 'json'])) as {
    items: { metadata: { name: string; uid: string; deletionTimestamp?: string; finalizers?: string[]; ownerReferences?: { kind: string; name: string }[] }; spec: { nodeName?: string }; status: unknown }[];
  };
  const out: string[] = [];
  // A Pod nobody deleted (no deletionTimestamp) points at the garbage collector: show the owners left and what it logged.
  out.push('--- Deployments, ReplicaSets and DaemonSets of Raven left:',
    await kc(['-n', 'kube-system', 'get', 'deployments,replicasets,daemonsets', '-l', 'app.kubernetes.io/part-of=raven', '-o',
      'custom-columns=KIND:.kind,NAME:.metadata.name,DELETION:.metadata.deletionTimestamp,OWNERS:.metadata.ownerReferences[*].name,FINALIZERS:.metadata.finalizers']).catch((err: unknown) => String(err)));
  out.push('--- Owners of each Pod:', ...list.items.map((p) => `${p.metadata.name}: ${JSON.stringify(p.metadata.ownerReferences ?? [])}`));
  try {
    const gcLines = readFileSync(controlPlane.controlPlane.logFile('kube-controller-manager'), 'utf8').split('\n').filter((l) => /garbage|graph_builder|dependency graph|monitor/i.test(l));
    out.push(`--- kube-controller-manager's garbage collector lines (${gcLines.length}, last 30):`, ...gcLines.slice(-30));
  } catch (err) {
    out.push(`kube-controller-manager.log: ${String(err)}`);
  }
  for (const pod of list.items) {
    out.push(`--- ${pod.metadata.name} on ${pod.spec.nodeName ?? '?'}, deletion ${pod.metadata.deletionTimestamp ?? 'none'}, finalizers ${JSON.stringify(pod.metadata.finalizers ?? [])}`);
    out.push(JSON.stringify(pod.status));
    out.push(await kc(['-n', 'kube-system', 'get', 'events', '--field-selector', `involvedObject.name=${pod.metadata.name}`]).catch((err: unknown) => String(err)));
    const node = rb.box.nodes.find((n) => n.name === pod.spec.nodeName);
    for (const file of ['kubelet.log', 'containerd.log']) {
      try {
        const lines = readFileSync(join(node!.logDir, file), 'utf8').split('\n');
        const own = lines.filter((l) => l.includes(pod.metadata.name) || l.includes(pod.metadata.uid));
        out.push(`${file} (${own.length} lines of this Pod, last 25; then the file's last 15):`, ...own.slice(-25), '...', ...lines.slice(-15));
      } catch (err) {
        out.push(`${file}: ${String(err)}`);
      }
    }
  }
  return out.join('\n');
}

/** Uninstalls Raven; then no Raven Pod, object, or kernel state is left on any running node. */
async function expectCleanUninstall(install: InstallMethod): Promise<void> {
  const gateway = (await kc(['get', 'gateways.v1beta1.raven.openyurt.io', 'gw-qingdao', '-o', 'jsonpath={.status.activeEndpoints[?(@.type=="tunnel")].nodeName}'])).trim();
  expect((await rb.box.node(gateway).exec('ip', ['link', 'show', 'raven-wg0'])).stdout).toContain('raven-wg0');
  const t = Date.now();
  // Pods on a node that is gone stay until someone removes them, as on any cluster.
  await uninstallRaven(cluster, install, { forceDeletePodsOn: [...stoppedNodes], slowPodsReport: stuckPodReport }).catch(async (err: unknown) => {
    throw new Error(`${String(err)}\n${await stuckPodReport()}`);
  });
  await waitFor('every Raven Pod gone', async () => (await kc(['-n', 'kube-system', 'get', 'pods', '-o', 'name'])).split('\n').every((l) => !/raven/.test(l)), 120_000, 500);
  console.log(`${install.kind === 'helm' ? 'helm uninstall' : 'kubectl delete -k'}: every Raven Pod gone after ${seconds(t)}`);
  if (install.kind === 'kustomize') {
    await waitFor('the Gateway CRD gone', async () => !/gateways\.raven/.test(await kc(['get', 'crds', '-o', 'name'])), 90_000, 500);
    await waitFor('the raven-heartbeats namespace gone', async () => !/raven/.test(await kc(['get', 'namespaces', '-o', 'name'])), 60_000, 500);
  }
  const kernelLeftovers = async (): Promise<string[]> => {
    const leftovers: string[] = [];
    for (const node of rb.box.nodes.filter((n) => !stoppedNodes.has(n.name))) {
      const sh = (cmd: string, args: string[]) => node.exec(cmd, args).then((r) => r.stdout, () => '');
      const links = (await sh('ip', ['-o', 'link', 'show'])).split('\n').filter((l) => /raven/.test(l));
      const rules = (await sh('ip', ['rule'])).split('\n').filter((l) => /lookup (9027|9028)/.test(l));
      const routes = (await sh('ip', ['route', 'show', 'table', 'all'])).split('\n').filter((l) => /table (9027|9028)/.test(l));
      // Raven's own chains and sets (kube-proxy's rules for Services of other names are not Raven's).
      const chains = (await sh('iptables-save', [])).split('\n').filter((l) => /^:RAVEN|-[AIj] RAVEN|--match-set raven-/.test(l) || /x-raven-proxy-internal-svc|raven-proxy-dns/.test(l));
      const sets = (await sh('ipset', ['list', '-n'])).split('\n').filter((l) => /raven/.test(l));
      for (const line of [...links, ...rules, ...routes, ...chains, ...sets]) leftovers.push(`${node.name}: ${line}`);
    }
    return leftovers;
  };
  // kube-proxy drops a deleted Service's rules on its next sync: give it a few seconds.
  let leftovers: string[] = [];
  await waitFor('no Raven state in any running node\'s kernel', async () => (leftovers = await kernelLeftovers()).length === 0, 30_000, 1_000).catch(() => undefined);
  expect(leftovers).toEqual([]);
  if (install.kind === 'helm') {
    // Known gap (issue 11): after helm uninstall the raven-heartbeats namespace was seen to stay Terminating for
    // minutes while Helm's kept CRD remains; what it waits on is printed here until that is fixed.
    const status = await kc(['get', 'namespace', 'raven-heartbeats', '-o', 'jsonpath={.status}']).catch(() => 'gone');
    console.log(`helm uninstall: namespace raven-heartbeats ${status}`);
    expect(await kc(['-n', 'kube-system', 'get', 'all', '-o', 'name'])).not.toMatch(/raven/);
    return;
  }
  expect(await kc(['-n', 'kube-system', 'get', 'all,configmaps,secrets,endpointslices,serviceaccounts,roles,rolebindings,leases', '-o', 'name'])).not.toMatch(/raven/);
  // The test bed's own binding for the apiserver (raven-testbed:…) is not Raven's.
  expect((await kc(['get', 'clusterroles,clusterrolebindings,mutatingwebhookconfigurations,validatingwebhookconfigurations,validatingadmissionpolicies,validatingadmissionpolicybindings', '-o', 'name']))
    .split('\n').filter((l) => /raven/.test(l) && !/\/raven-testbed:/.test(l))).toEqual([]);
}

/** Busybox ping's per-echo lines (`seq=N`): the count, the unanswered sequence numbers and the longest run of them. */
function echoLoss(out: string, count: number): { missing: number[]; longestRun: number } {
  const answered = new Set([...out.matchAll(/seq=(\d+)/g)].map((m) => Number(m[1])));
  const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !answered.has(i));
  let longestRun = 0;
  let run = 0;
  for (let i = 0; i < count; i++) {
    run = answered.has(i) ? 0 : run + 1;
    longestRun = Math.max(longestRun, run);
  }
  return { missing, longestRun };
}

/** Starts a ping inside a pod, detached (no kubectl session has to survive what the test does), into a file there. */
async function pingInPod(pod: string, to: string, count: number, interval: string, file: string): Promise<() => Promise<string>> {
  await kc(['exec', '-n', 'default', pod, '--', 'sh', '-c', `rm -f ${file}; setsid sh -c 'ping -c ${count} -i ${interval} ${to} > ${file} 2>&1' </dev/null >/dev/null 2>&1 &`]);
  return () => waitFor(`the in-pod ping into ${file} finished`, async () => {
    const text = await kc(['exec', '-n', 'default', pod, '--', 'cat', file]).catch(() => '');
    return /packets transmitted/.test(text) ? text : undefined;
  }, 90_000, 1_000);
}
const daemonSet = probeDaemonSet;

const ECHO_QD = {
  apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'echo-qingdao', namespace: 'default' },
  spec: {
    replicas: 2, selector: { matchLabels: { app: 'echo-qingdao' } },
    template: { metadata: { labels: { app: 'echo-qingdao' } }, spec: { terminationGracePeriodSeconds: 0, nodeSelector: { 'raven.openyurt.io/gateway': 'gw-qingdao' }, containers: [probeContainer('echo')] } },
  },
};
const ECHO_QD_SERVICE = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo-qingdao', namespace: 'default' }, spec: { selector: { app: 'echo-qingdao' }, ports: [{ port: 80, targetPort: 8080 }] } };

const pods = (selector: string) => podRows(cluster.kubeconfig, selector);
const running = (selector: string, count: number) => runningPods(cluster.kubeconfig, selector, count);

const domainOf = (node: string) => rb.box.node(node).domain;

/** `kubectl port-forward pod :8080`, then three GETs of /node through it: each must name `node`. */
async function portForwardReaches(pod: string, node: string): Promise<void> {
  const child = spawn(binaryPath('kubectl'), [`--kubeconfig=${cluster.kubeconfig}`, 'port-forward', '-n', 'default', `pod/${pod}`, ':8080'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const port = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`no port-forward after 20 s: ${out}`)), 20_000);
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const forwarded = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out);
        if (forwarded) {
          clearTimeout(timer);
          resolve(forwarded[1]!);
        }
      });
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      child.once('exit', (code) => reject(new Error(`port-forward exited ${code}: ${out}`)));
    });
    for (let i = 0; i < 3; i++) expect((await (await fetch(`http://127.0.0.1:${port}/node`)).text()).trim(), pod).toBe(node);
  } finally {
    child.kill('SIGTERM');
  }
}
const probeOn = async (node: string) => (await pods('app=probe')).find((p) => p.node === node)!;

beforeAll(async () => {
  controlPlane = await startCluster({ dir: mkdtempSync(join(tmpdir(), 'raven-realnodes-cp-')), webhook: false });
  cluster = controlPlane.info();
  kube = await adminClient(cluster);
  rb = await RavenBox.up({
    dir: mkdtempSync(join(tmpdir(), 'raven-realnodes-')), cluster, realNodes: true, topology: realWalkthroughTopology(),
    deploy: { install: KUSTOMIZE, log: (line) => console.log(`[deploy ${seconds(started)}] ${line}`) },
  });
  console.log(`seven real nodes Ready and Raven installed from its images after ${seconds(started)}`);
  await rb.waitConverged(180_000);
  console.log(`Raven's tunnels converged after ${seconds(started)}`);
  // L7 is ready when the apiserver reaches every edge kubelet by name (the node proxy's healthz).
  await waitL7(120_000);
  console.log(`L7 ready after ${seconds(started)}`);
}, 1_200_000);

afterAll(async () => {
  const memory = rb?.realNodes?.residentBytes();
  if (memory) {
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
    console.log(`real-node machinery: PSS ${mib(memory.proportional)}, RSS ${mib(memory.total)} (RSS: ${Object.entries(memory.byComponent).map(([k, v]) => `${k} ${mib(v)}`).join(', ')})`);
  }
  await kc(['delete', 'deployment/busy-box', 'deployment/echo-qingdao', 'service/echo-qingdao', 'daemonset/probe', 'daemonset/probe-host', '-n', 'default', '--ignore-not-found', '--wait=false']).catch(() => undefined);
  const t = Date.now();
  await rb?.down();
  console.log(`teardown took ${seconds(t)}`);
  // Nothing of the nodes is left: no cgroups (v1 hierarchies and the unified one); processes, mounts and
  // namespaces go with the box (its own checks).
  kube?.close();
  await controlPlane?.destroy();
  if (rb) expect(leftoverBoxCgroups(rb.box.id)).toEqual([]);
}, 180_000);

describe('Raven as Pods of its own images, installed with kubectl apply -k', () => {
  it('kubectl get pod -n kube-system: gateway-pickup (2, one leader), a tunnel-agent on every node, proxy-server and proxy-clients where placed, raven-proxy-dns; all Running and Ready', async () => {
    await expectRavenPodsAsPlaced();
  });

  it('kubectl logs of each Raven Pod shows its JSON logs', async () => {
    for (const pod of (await ravenPods()).filter((p) => !p.name.startsWith('raven-proxy-dns-'))) {
      const line = (await kc(['-n', 'kube-system', 'logs', pod.name, '--tail=1'])).trim();
      expect(() => JSON.parse(line), `${pod.name}: ${line}`).not.toThrow();
      expect((JSON.parse(line) as { level?: unknown }).level, pod.name).toBeTypeOf('string');
    }
  });
});

describe('walkthrough 2.2 on real nodes', () => {
  it('lists the nodes Ready with kubelet v1.34 and a containerd runtime (kubectl get nodes -o wide)', async () => {
    console.log(await kc(['get', 'nodes', '-o', 'wide']));
    const rows = await kc(['get', 'nodes', '-o',
      `jsonpath={range .items[*]}{.metadata.name} {.status.nodeInfo.kubeletVersion} {.status.nodeInfo.containerRuntimeVersion} {.status.conditions[?(@.type=="Ready")].status} {.metadata.labels.${EDGE_WORKER_LABEL.replace(/\./g, '\\.')}}{"\\n"}{end}`]);
    const ours = rows.split('\n').filter(Boolean).map((l) => l.split(' ')).filter(([name]) => rb.box.nodes.some((n) => n.name === name));
    expect(ours).toHaveLength(7);
    for (const [name, kubelet, runtime, ready, edge] of ours) {
      expect(kubelet, name).toMatch(/^v1\.34\./);
      expect(runtime, name).toMatch(/^containerd:\/\//);
      expect(ready, name).toBe('True');
      expect(edge, name).toBe(domainOf(name!) === 'cloud' ? 'false' : 'true');
    }
  });

  it('runs the busybox Deployment on the edge workers, placed by kube-scheduler, with CNI addresses in the nodes\' pod CIDRs', async () => {
    const t = Date.now();
    await kc(['apply', '-n', 'default', '-f', '-'], walkthroughBusybox());
    const rows = await running('app=busy-box', 4);
    console.log(`4 pods Running after ${seconds(t)}\n${await kc(['get', 'pod', '-n', 'default', '-o', 'wide'])}`);
    const toInt = (ip: string) => ip.split('.').reduce((a, o) => (a << 8) + Number(o), 0) >>> 0;
    for (const pod of rows) {
      const node = rb.box.node(pod.node);
      expect(node.domain, pod.name).not.toBe('cloud');
      const [net, bits] = node.podCIDR.split('/');
      const mask = (~0 << (32 - Number(bits))) >>> 0;
      expect((toInt(pod.ip) & mask) >>> 0, `${pod.name} ${pod.ip} in ${node.podCIDR}`).toBe(toInt(net!) & mask);
    }
  });

  it('pings a qingdao pod from a hangzhou pod with 0% loss (kubectl exec … -- ping)', async () => {
    await kc(['apply', '-f', '-'], JSON.stringify(daemonSet('probe', false)));
    const probes = await running('app=probe', 7);
    const hz = probes.find((p) => domainOf(p.node) === 'hangzhou')!;
    const qd = probes.find((p) => domainOf(p.node) === 'qingdao')!;
    const out = await kc(['exec', '-n', 'default', hz.name, '--', 'ping', qd.ip, '-c', '4']);
    console.log(out);
    expect(out).toMatch(/4 packets transmitted, 4 packets received, 0% packet loss/);
  });
});

const matrixFailures = async (excluded: readonly string[] = []) => (await podMatrixFailures(cluster.kubeconfig, await pods('app=probe'), domainOf, excluded)).failures;

describe('the connectivity matrix on real pods', () => {
  it('every pod reaches every pod in the other Gateways\' domains', async () => {
    await running('app=probe', 7);
    expect(await matrixFailures()).toEqual([]);
  });

  it('a hangzhou pod reaches a ClusterIP Service whose backends are in qingdao, and both backends answer', async () => {
    await kc(['apply', '-f', '-'], [ECHO_QD, ECHO_QD_SERVICE].map((o) => JSON.stringify(o)).join('\n'));
    const backends = await running('app=echo-qingdao', 2);
    const clusterIP = (await kc(['get', 'service', 'echo-qingdao', '-n', 'default', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    const from = await probeOn(HZ_MEMBER);
    const seen = new Set<string>();
    await waitFor('both qingdao backends answering through the ClusterIP', async () => {
      const out = await kc(['exec', '-n', 'default', from.name, '--', 'timeout', '5', 'wget', '-q', '-O', '-', `http://${clusterIP}/node`]).catch(() => '');
      if (out.trim()) seen.add(out.trim());
      return seen.size === 2;
    }, 30_000, 100);
    expect([...seen].sort()).toEqual(backends.map((b) => b.node).sort());
  });

  it('a 3000-byte ping and a 64 MiB TCP transfer cross the tunnel (fragmentation, MSS)', async () => {
    const from = await probeOn(HZ_MEMBER);
    const to = await probeOn(QD_MEMBER);
    expect(await kc(['exec', '-n', 'default', from.name, '--', 'ping', '-c', '3', '-s', '3000', to.ip])).toMatch(/3 packets transmitted, 3 packets received, 0% packet loss/);
    const t = Date.now();
    const bytes = await kc(['exec', '-n', 'default', from.name, '--', 'sh', '-c', `timeout 60 wget -q -O - http://${to.ip}:8080/cgi-bin/big | wc -c`]);
    console.log(`64 MiB hangzhou <- qingdao pod to pod in ${seconds(t)}`);
    expect(Number(bytes.trim())).toBe(64 * 1024 * 1024);
  });
});

describe('ravenctl verify on the deployment', () => {
  it('passes the whole matrix: pod to pod, 3000-byte pings, ClusterIPs across domains, L7 to every edge node by name', async () => {
    await expectVerifyPasses();
  });
});

describe('walkthrough 2.3 through the real apiserver: two edge nodes share an InternalIP', () => {
  const checkL7 = async (rounds: number) => {
    for (const node of [HZ_GATEWAY, LONE]) {
      expect(rb.box.node(node).internalIP).toBe(CONFLICTING_IP);
      const pod = (await probeOn(node)).name;
      for (let round = 0; round < rounds; round++) {
        expect(await kc(['logs', '-n', 'default', pod, '--tail=1'])).toBe(`node=${node}\n`);
        expect(await kc(['exec', '-i', '-n', 'default', pod, '--', 'sh'], 'echo hello word\necho "$NODE_NAME"\n')).toBe(`hello word\n${node}\n`);
        expect(await kc(['get', '--raw', `/api/v1/nodes/${node}/proxy/metrics`])).toContain(`kubelet_node_name{node="${node}"} 1`);
      }
      expect(await kubectlUntil(cluster.kubeconfig, ['logs', '-f', '-n', 'default', pod, '--tail=1'], (out) => (out.split('\n').filter(Boolean).length >= 3 ? out : undefined)))
        .toMatch(new RegExp(`^(node=${node}\\n){3}`));
      await portForwardReaches(pod, node);
    }
  };

  it('kubectl logs, logs -f, exec with stdin, port-forward and the node proxy reach the right node every time', async () => {
    await checkL7(3);
  });

  it('still works with enable-l3-tunnel: "false", so it went over L7', async () => {
    await kc(['-n', 'kube-system', 'patch', 'configmap', 'raven-cfg', '--type=merge', '-p', '{"data":{"enable-l3-tunnel":"false"}}']);
    const from = await probeOn(HZ_MEMBER);
    const to = await probeOn(QD_MEMBER);
    await waitFor('pod-to-pod across domains stopping with L3 off', async () => {
      const out = await kc(['exec', '-n', 'default', from.name, '--', 'sh', '-c', `ping -c 1 -W 1 ${to.ip} >/dev/null && echo up || echo down`]);
      return out.trim() === 'down';
    }, 60_000, 500);
    await checkL7(1);
  });
});

describe('faults on the kubectl apply -k deployment', () => {
  it('L3 comes back when enable-l3-tunnel is "true" again', async () => {
    await kc(['-n', 'kube-system', 'patch', 'configmap', 'raven-cfg', '--type=merge', '-p', '{"data":{"enable-l3-tunnel":"true"}}']);
    await rb.waitConverged(60_000);
    await waitFor('the pod matrix passing again', async () => (await matrixFailures()).length === 0, 60_000, 1_000);
  });

  it('kubectl delete pod of the active hangzhou tunnel-agent: the DaemonSet\'s new Pod takes over the node\'s tunnel (the outage at 100 pps measured)', async () => {
    const from = await probeOn(QD_MEMBER);
    const to = await probeOn(HZ_MEMBER);
    const old = (await podsOf('raven-tunnel-agent-')).find((p) => p.node === HZ_GATEWAY)!;
    const COUNT = 2_000;
    const finished = await pingInPod(from.name, to.ip, COUNT, '0.01', '/tmp/agent-pod.txt');
    await sleep(2_000);
    const t = Date.now();
    await kc(['-n', 'kube-system', 'delete', 'pod', old.name, '--wait=false']);
    await waitFor('the new tunnel-agent Pod Ready on the node', async () => (await podsOf('raven-tunnel-agent-')).some((p) => p.node === HZ_GATEWAY && p.name !== old.name && p.ready), 90_000, 250);
    const readyAfter = seconds(t);
    const out = await finished();
    const { missing, longestRun } = echoLoss(out, COUNT);
    console.log(`tunnel-agent Pod ${old.name} deleted: its replacement Ready after ${readyAfter}; ${/\d+ packets transmitted.*/.exec(out)?.[0]}; ${missing.length} echoes lost, the longest run ${longestRun} (${longestRun * 10} ms at 100 pps)`);
    expect(out).toMatch(new RegExp(`${COUNT} packets transmitted`));
    // With userspace WireGuard the tunnel device dies with the Pod (README, limits): the outage is bounded, not zero.
    expect(longestRun * 10).toBeLessThanOrEqual(AGENT_POD_OUTAGE_LIMIT_MS);
    expect(missing.length * 10).toBeLessThanOrEqual(AGENT_POD_OUTAGE_LIMIT_MS);
    await rb.waitConverged(60_000);
    expect(await matrixFailures()).toEqual([]);
  });

  it('deleting the leader gateway-pickup Pod: the other replica takes over within the lease', async () => {
    const lease = async () => {
      const { spec } = JSON.parse(await kc(['-n', 'kube-system', 'get', 'lease', 'raven-gateway-pickup', '-o', 'json'])) as { spec: { holderIdentity?: string; leaseDurationSeconds?: number } };
      return [spec.holderIdentity ?? '', String(spec.leaseDurationSeconds ?? '')] as const;
    };
    const [holder, duration] = await lease();
    const leaderPod = (await podsOf('raven-gateway-pickup-')).find((p) => holder.startsWith(p.name))!;
    const t = Date.now();
    await kc(['-n', 'kube-system', 'delete', 'pod', leaderPod.name, '--wait=false']);
    let next = '';
    await waitFor('another gateway-pickup leads', async () => {
      [next] = await lease();
      return next !== '' && !next.startsWith(leaderPod.name);
    }, 60_000, 200);
    const took = (Date.now() - t) / 1000;
    expect((await podsOf('raven-gateway-pickup-')).some((p) => p.name !== leaderPod.name && next.startsWith(p.name))).toBe(true);
    console.log(`gateway-pickup leader ${leaderPod.name} deleted: ${next} leads after ${took.toFixed(1)} s (lease ${duration} s)`);
    expect(took).toBeLessThanOrEqual(Number(duration) + 2);
    // The new leader acts: a new Gateway gets its status (conditions) from it.
    await kc(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name: 'gw-after-failover' }, spec: {} }));
    await waitFor('the new leader writes the new Gateway\'s status', async () => (await kc(['get', 'gateway', 'gw-after-failover', '-o', 'jsonpath={.status.conditions[*].type}'])).includes('Ready'), 30_000, 250);
    await kc(['delete', 'gateway', 'gw-after-failover']);
  });

  it('kubectl scale of proxy-server to 2 (proxyConfig.Replicas 2) and back to 1: the proxy-clients follow, and L7 calls fail only within the measured windows', async () => {
    type CloudSpec = { endpoints: Array<Record<string, unknown>>; proxyConfig?: Record<string, unknown> };
    const cloudSpec = async () => (JSON.parse(await kc(['get', 'gateways.v1beta1.raven.openyurt.io', 'gw-cloud', '-o', 'json'])) as { spec: CloudSpec }).spec;
    const activeProxies = async () => (await kc(['get', 'gateways.v1beta1.raven.openyurt.io', 'gw-cloud', '-o', 'jsonpath={range .status.activeEndpoints[?(@.type=="proxy")]}{.nodeName} {end}'])).trim().split(' ').filter(Boolean).sort();
    const original = await cloudSpec();
    const clients = (await podsOf('raven-proxy-client-')).map((p) => p.node);
    const serversConnected = () => Promise.all(clients.map(async (n) => {
      const { body } = await rb.nodeGet(n, rb.box.node(n).internalIP, 10267, '/metrics');
      return Number(/^raven_proxy_client_servers_connected (\d+)/m.exec(body)?.[1] ?? -1);
    }));
    // A steady stream of L7 calls through the apiserver (the node proxy by name) while the replicas change.
    const edge = [HZ_MEMBER, QD_MEMBER, LONE];
    const outcomes: Array<{ t: number; ok: boolean; error?: string }> = [];
    let loading = true;
    const load = (async () => {
      for (let i = 0; loading; i++) {
        const t = Date.now();
        const answer = await kube.requestText('GET', `/api/v1/nodes/${edge[i % edge.length]}/proxy/healthz`, { timeoutMs: 10_000 }).catch((err: unknown) => `error: ${String(err)}`);
        outcomes.push({ t, ok: answer === 'ok', ...(answer === 'ok' ? {} : { error: answer.slice(0, 200) }) });
        await sleep(20);
      }
    })();
    const phase = async (what: string, change: () => Promise<void>) => {
      const from = Date.now();
      await change();
      await sleep(3_000);
      const during = outcomes.filter((o) => o.t >= from);
      const failed = during.filter((o) => !o.ok);
      const window = failed.length ? failed[failed.length - 1]!.t - failed[0]!.t : 0;
      console.log(`proxy-server ${what}: ${during.length} L7 calls, ${failed.length} failed${failed.length ? ` within ${window} ms (${[...new Set(failed.map((f) => f.error))].join('; ')})` : ''}`);
      return { failed, window };
    };
    try {
      const up = await phase('scaled 1 -> 2', async () => {
        await kc(['label', '--overwrite', 'node', CLOUD_MEMBER, 'raven.openyurt.io/proxy=server']);
        const endpoints = [...original.endpoints, { nodeName: CLOUD_MEMBER, underNAT: false, port: 10262, type: 'proxy', publicIP: CLOUD_MEMBER_PUBLIC_IP }];
        await kc(['patch', 'gateways.v1beta1.raven.openyurt.io', 'gw-cloud', '--type=merge', '-p', JSON.stringify({ spec: { endpoints, proxyConfig: { ...original.proxyConfig, Replicas: 2 } } })]);
        await kc(['-n', 'kube-system', 'scale', 'deployment/raven-proxy-server', '--replicas=2']);
        await kc(['-n', 'kube-system', 'rollout', 'status', 'deployment/raven-proxy-server', '--timeout=120s']);
        await waitFor('both proxy-servers active', async () => (await activeProxies()).length === 2, 60_000, 250);
        await waitFor('every proxy-client holding a tunnel to both replicas', async () => (await serversConnected()).every((n) => n === 2), 60_000, 250);
      });
      expect((await podsOf('raven-proxy-server-')).map((p) => p.node).sort()).toEqual([WALKTHROUGH_NODES.cloudGateway, CLOUD_MEMBER].sort());
      const down = await phase('scaled 2 -> 1', async () => {
        await kc(['patch', 'gateways.v1beta1.raven.openyurt.io', 'gw-cloud', '--type=merge', '-p', JSON.stringify({ spec: { endpoints: original.endpoints, proxyConfig: original.proxyConfig } })]);
        await kc(['-n', 'kube-system', 'scale', 'deployment/raven-proxy-server', '--replicas=1']);
        await waitFor('one proxy-server Pod left', async () => (await podsOf('raven-proxy-server-')).length === 1, 90_000, 250);
        await waitFor('one proxy-server active', async () => (await activeProxies()).length === 1, 60_000, 250);
        await waitFor('every proxy-client holding one tunnel', async () => (await serversConnected()).every((n) => n === 1), 60_000, 250);
      });
      expect(up.window).toBeLessThanOrEqual(PROXY_SCALE_WINDOW_LIMIT_MS);
      expect(down.window).toBeLessThanOrEqual(PROXY_SCALE_WINDOW_LIMIT_MS);
    } finally {
      loading = false;
      await load;
      await kc(['label', 'node', CLOUD_MEMBER, 'raven.openyurt.io/proxy-']).catch(() => '');
    }
    // Afterwards every call succeeds again.
    const tail = outcomes.filter((o) => o.t >= outcomes[outcomes.length - 1]!.t - 2_000);
    expect(tail.length).toBeGreaterThan(10);
    expect(tail.filter((o) => !o.ok)).toEqual([]);
    await waitL7(30_000);
  });
});

describe('kubectl delete -k, then helm install of the chart', () => {
  it('kubectl delete -k removes Raven, and the stopping agents leave no Raven state in any node\'s kernel', async () => {
    await expectCleanUninstall(KUSTOMIZE);
  }, 480_000);

  it('helm install (with tunnelAgent.forwardNodeIP=true) gives the same Pods, Running and Ready, and ravenctl verify passes (the matrix and L7 by node name)', async () => {
    const t = Date.now();
    await rb.reinstall(HELM);
    await rb.waitConverged(180_000);
    await waitL7(120_000);
    console.log(`helm install: converged, L7 ready after ${seconds(t)}`);
    await expectRavenPodsAsPlaced();
    await expectVerifyPasses();
  });

  it('with tunnelAgent.forwardNodeIP=true, a hangzhou non-gateway node pings a qingdao node with 0% loss (host network)', async () => {
    await kc(['apply', '-f', '-'], JSON.stringify(daemonSet('probe-host', true)));
    const hosts = await running('app=probe-host', 7);
    const from = hosts.find((p) => p.node === HZ_MEMBER)!;
    const out = await kc(['exec', '-n', 'default', from.name, '--', 'ping', rb.box.node(QD_MEMBER).internalIP, '-c', '4']);
    expect(out).toMatch(/4 packets transmitted, 4 packets received, 0% packet loss/);
  });
});

describe('a PSK the agents cannot follow', () => {
  type Diagnose = { findings: { severity: string; check: string; object: string; message: string; fix: string }[]; notes?: { topic: string; message: string }[] };
  const diagnose = async () => JSON.parse((await ravenctl(['diagnose', '-o', 'json'])).stdout) as Diagnose;
  const pskFindings = (d: Diagnose) => d.findings.filter((f) => f.check === 'psk');
  type Role = { rules: { resources?: string[] }[] };
  const getRole = async () => JSON.parse(await kc(['-n', 'kube-system', 'get', 'role', 'raven-tunnel-agent', '-o', 'json'])) as Role;

  it('the Secret rotated while the agents may not read it: diagnose names every agent holding the old PSK and the RBAC fix, and is clean once restored', async () => {
    const healthy = await diagnose();
    const answered = Number(/^(\d+) of \d+ tunnel-agent/.exec(healthy.notes?.find((n) => n.topic === 'agents')?.message ?? '')?.[1] ?? 0);
    // Every gateway node at least (the cloud's directly, the edge's through the tunnels, forwardNodeIP=true).
    expect(answered).toBeGreaterThanOrEqual(3);
    expect(pskFindings(healthy)).toEqual([]);
    let warned: string[] = [];
    const rules = (await getRole()).rules;
    const original = (JSON.parse(await kc(['-n', 'kube-system', 'get', 'secret', 'raven-agent-secret', '-o', 'json'])) as { data: Record<string, string> }).data['vpn-connection-psk']!;
    const t = Date.now();
    try {
      // Someone edits the agents' Role and drops its one Secret rule: each agent keeps the PSK it has, by design.
      await kc(['replace', '-f', '-'], JSON.stringify({ ...(await getRole()), rules: rules.filter((r) => !r.resources?.includes('secrets')) }));
      await waitFor('every agent reporting that it cannot re-read its PSK', async () => (warned = pskFindings(await diagnose()).filter((f) => f.severity === 'warning').map((f) => f.object).sort()).length === answered, 60_000, 2_000);
      await kc(['-n', 'kube-system', 'patch', 'secret', 'raven-agent-secret', '--type=merge', '-p', JSON.stringify({ data: { 'vpn-connection-psk': Buffer.from(`rotated-${Date.now()}`).toString('base64') } })]);
      const found = pskFindings(await diagnose());
      console.log(`PSK rotated while unreadable: ${found.length} agents named ${((Date.now() - t) / 1000).toFixed(1)} s after the Role lost its Secret rule; ${found[0]?.message}`);
      expect(found.map((f) => `${f.severity} ${f.object}`).sort()).toEqual(warned.map((o) => `error ${o}`));
      for (const f of found) {
        expect(f.message).toMatch(/holds another PSK than secret\/raven-agent-secret \(fingerprint [0-9a-f]{16}, not [0-9a-f]{16}\) from secret\/raven-agent-secret: its tunnel handshakes with every peer fail$/);
        expect(f.fix).toContain('auth can-i get secret/raven-agent-secret --as=system:serviceaccount:kube-system:raven-tunnel-agent');
      }
    } finally {
      // The Secret first: the agents never see the rotated value, so no tunnel changes its key.
      await kc(['-n', 'kube-system', 'patch', 'secret', 'raven-agent-secret', '--type=merge', '-p', JSON.stringify({ data: { 'vpn-connection-psk': original } })]);
      await kc(['replace', '-f', '-'], JSON.stringify({ ...(await getRole()), rules }));
    }
    await waitFor('diagnose without PSK findings', async () => pskFindings(await diagnose()).length === 0, 60_000, 2_000);
    await expectVerifyPasses();
  });
});

describe('faults on the helm release', () => {
  it('the active hangzhou gateway\'s node stops (kubelet, containerd, agents): the standby takes over, pods and L7 work again', async () => {
    // The admin lists a second hangzhou node for each role, as for any Gateway that must survive a node.
    const gw = JSON.parse(await kc(['get', 'gateways.v1beta1.raven.openyurt.io', 'gw-hangzhou', '-o', 'json'])) as { spec: { endpoints: object[] } };
    const endpoints = [...gw.spec.endpoints, { nodeName: HZ_MEMBER, underNAT: true, port: 10262, type: 'proxy' }, { nodeName: HZ_MEMBER, underNAT: true, port: 4500, type: 'tunnel' }];
    // ... and marks it for the proxy-client DaemonSet, as for every proxy endpoint (README, install step 2).
    await kc(['label', '--overwrite', 'node', HZ_MEMBER, 'raven.openyurt.io/proxy=client']);
    await kc(['patch', 'gateways.v1beta1.raven.openyurt.io', 'gw-hangzhou', '--type=merge', '-p', JSON.stringify({ spec: { endpoints } })]);
    await waitFor('the standby published its key', async () => {
      const out = await kc(['get', 'gateways.v1beta1.raven.openyurt.io', 'gw-hangzhou', '-o', `jsonpath={.spec.endpoints[?(@.nodeName=="${HZ_MEMBER}")].config.publicKey}`]);
      return out.trim().length > 0;
    }, 30_000, 250);
    const from = await probeOn(QD_MEMBER);
    const to = await probeOn(HZ_MEMBER);
    const downAt = Date.now();
    stoppedNodes.add(HZ_GATEWAY);
    await rb.box.nodeDown(HZ_GATEWAY);
    await waitFor('qingdao reaching the surviving hangzhou node\'s pod', async () => {
      const out = await kc(['exec', '-n', 'default', from.name, '--', 'sh', '-c', `ping -c 1 -W 1 ${to.ip} >/dev/null && echo up || echo down`]);
      return out.trim() === 'up';
    }, 60_000, 100);
    console.log(`gateway node ${HZ_GATEWAY} stopped: qingdao -> hangzhou pod traffic back after ${seconds(downAt)}`);
    const elected = await kc(['get', 'gateways.v1beta1.raven.openyurt.io', 'gw-hangzhou', '-o', 'jsonpath={range .status.activeEndpoints[*]}{.type}={.nodeName} {end}']);
    expect(elected.trim().split(' ').sort()).toEqual([`proxy=${HZ_MEMBER}`, `tunnel=${HZ_MEMBER}`]);
    // The matrix runs its pings through kubectl exec, which reaches hangzhou's pods over L7: wait for that first.
    await waitFor('L7 to the surviving hangzhou node', async () => (await kc(['get', '--raw', `/api/v1/nodes/${HZ_MEMBER}/proxy/healthz`]).catch(() => '')) === 'ok', 60_000, 500);
    console.log(`L7 to ${HZ_MEMBER} back after ${seconds(downAt)}`);
    expect(await matrixFailures([HZ_GATEWAY])).toEqual([]);
    expect(await kc(['exec', '-i', '-n', 'default', to.name, '--', 'sh'], 'echo "$NODE_NAME"\n')).toBe(`${HZ_MEMBER}\n`);
    expect(await kc(['logs', '-n', 'default', to.name, '--tail=1'])).toBe(`node=${HZ_MEMBER}\n`);
  });

  it('pods keep talking across domains through a 60 s apiserver outage, and the agents act on changes afterwards', async () => {
    const from = await probeOn(QD_MEMBER);
    const to = await probeOn(HZ_MEMBER);
    // The pings run inside the pod, detached: no kubectl session survives the apiserver.
    await kc(['exec', '-n', 'default', from.name, '--', 'sh', '-c', `setsid sh -c 'ping -c 70 ${to.ip} > /tmp/outage.txt 2>&1' </dev/null >/dev/null 2>&1 &`]);
    await sleep(2_000);
    await controlPlane.controlPlane.stopApiserver();
    await sleep(60_000);
    await controlPlane.controlPlane.startApiserver();
    // A leader-elected kube-controller-manager exits once a 60 s outage ends its lease, and its static Pod restarts it;
    // ours run without leader election, so restart them as that would. (A KCM kept through the outage was seen to leave
    // a Deployment's Pods behind at helm uninstall: its garbage collector never deleted them.)
    await controlPlane.controlPlane.restartControllerManager();
    await rb.realNodes!.restartControllerManager();
    await expectGarbageCollectorCascades();
    const out = await waitFor('the in-pod ping finished', async () => {
      const text = await kc(['exec', '-n', 'default', from.name, '--', 'cat', '/tmp/outage.txt']).catch(() => '');
      return /packets transmitted/.test(text) ? text : undefined;
    }, 60_000, 1_000);
    const answered = new Set([...out.matchAll(/seq=(\d+)/g)].map((m) => Number(m[1])));
    const missing = Array.from({ length: 70 }, (_, i) => i).filter((i) => !answered.has(i));
    console.log(`apiserver outage of 60 s (from 2 s after the first echo): ${/\d+ packets transmitted.*/.exec(out)?.[0]}; unanswered seq ${JSON.stringify(missing)}`);
    // One echo in 70 may fall to the CPU storm of the apiserver's restart on two cores; a broken path loses dozens.
    expect(out, out).toMatch(/70 packets transmitted/);
    expect(missing.length, out).toBeLessThanOrEqual(1);
    // The first request after the restart may meet a dead keep-alive connection: retry until the apiserver answers.
    await waitFor('the apiserver takes a Gateway change', () => kc(['annotate', '--overwrite', 'gateway', 'gw-qingdao', 'raven.openyurt.io/extra-allowed-source-cidrs=192.0.2.0/24']).then(() => true, () => false), 30_000, 500);
    await waitFor('the agents act on a change after the outage', async () => {
      const { stdout } = await rb.box.node(WALKTHROUGH_NODES.cloudGateway).exec('ip', ['-4', 'route', 'show', 'table', 'all', '192.0.2.0/24']);
      return stdout.includes('dev raven-wg0');
    }, 30_000, 250);
    await kc(['annotate', 'gateway', 'gw-qingdao', 'raven.openyurt.io/extra-allowed-source-cidrs-']);
  });
});

describe('helm uninstall (last)', () => {
  it('removes the release, and no running node keeps Raven state in its kernel', async () => {
    await expectCleanUninstall(HELM);
  }, 480_000);
});
