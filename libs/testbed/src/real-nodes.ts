import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { LABELS, SYSTEM_NAMESPACE } from '@raven/api-types';
import { KubeClient, RESOURCES } from '@raven/controller-kit';
import { hostExec, type RunResult } from '@raven/netlink';
import { issueCertificate, type CertificateAuthority } from '@raven/pki';
import { binaryPath } from './binaries.ts';
import type { Box, BoxNode } from './box/index.ts';
import { INSIDE_APISERVER, RELAY_SCRIPT, type RelayPair } from './box/index.ts';
import type { ClusterInfo } from './cluster.ts';
import { writeKubeconfig } from './kubeconfig.ts';
import { clusterCa } from './l7.ts';
import { TSX_LOADER, WORKSPACE_ROOT } from './apps.ts';
import { APISERVER_HOSTS_FILE, CLUSTER_EGRESS_SOCKET } from './control-plane.ts';
import { kubectl } from './kubectl.ts';
import { boxImages, corednsImage, SANDBOX_IMAGE } from './oci-image.ts';
import { REGISTRY_PORT } from './oci-registry.ts';
import { ManagedProcess, pidAlive, waitFor } from './process.ts';

/**
 * Real Kubernetes nodes on the box's node namespaces: per node a containerd (CNI bridge + host-local on the node's
 * pod CIDR) and a kubelet, kube-proxy in iptables mode, and one kube-scheduler for the cluster. Each node's
 * components share a private mount namespace (entered with nsenter, which keeps /sys and its cgroup mounts) with
 * tmpfs over the runtime's state and read-only shims over the kernel sysctls the kubelet would otherwise write.
 */

export const EDGE_WORKER_LABEL = 'openyurt.io/is-edge-worker';
export const CNI_BIN_DIR = '/usr/lib/cni';
export const CONTAINERD_SOCKET = '/run/containerd/containerd.sock';
// /var/lib/raven and /var/lib/raven-proxy: the hostPath state of Raven's own Pods, one per node as on real machines.
const PRIVATE_TMPFS = ['/run/containerd', '/var/lib/kubelet', '/var/lib/cni', '/var/log/pods', '/var/log/containers', '/run/netns', '/var/lib/raven', '/var/lib/raven-proxy'];
/** Images and their unpacked snapshots live on disk (a node of Raven's images holds about 0.5 GB), bound over this path. */
const CONTAINERD_ROOT = '/var/lib/containerd';
/** What the kubelet expects of the kernel (protectKernelDefaults); shimmed read-only inside every node. */
const KERNEL_DEFAULTS: Record<string, string> = {
  'vm/overcommit_memory': '1', 'vm/panic_on_oom': '0', 'kernel/panic': '10', 'kernel/panic_on_oops': '1',
  'kernel/keys/root_maxkeys': '1000000', 'kernel/keys/root_maxbytes': '25000000',
};
const CGROUP_V1 = '/sys/fs/cgroup';
const APISERVER_ENDPOINT_PORT = 6443;
const KUBERNETES_ENDPOINTS = 'kubernetes-raven-box';
const PROXY_DNS_MANIFEST = join(WORKSPACE_ROOT, 'k8s/base/raven-proxy-dns.yaml');
const CONNECT_PROXY_SCRIPT = new URL('./box/connect-proxy.mjs', import.meta.url).pathname;
const KEEPER_SCRIPT = new URL('./box/keeper.ts', import.meta.url).pathname;
/** What `RealNodes.downFromState` needs, persisted in the box's directory. */
const STATE_FILE = 'real-nodes.json';
interface RealNodesState {
  cgroupBase: string;
  madeCgroups: string[];
  nodes: string[];
  pids: number[];
  adminKubeconfig: string;
}
/** Controllers of the box's own kube-controller-manager: what runs workloads on real nodes. */
const BOX_CONTROLLERS = ['deployment', 'replicaset', 'daemonset', 'statefulset', 'job', 'podgc', 'nodelifecycle'];

export interface RealNodesOptions {
  box: Box;
  cluster: ClusterInfo;
  kube: KubeClient;
  /** Domains whose nodes are cloud nodes (`openyurt.io/is-edge-worker: "false"`); default `['cloud']`. */
  cloudDomains?: string[];
}

export class RealNodeError extends Error {
  override readonly name = 'RealNodeError';
}

/** One box node turned into a Kubernetes node. */
export class RealNode {
  private holder?: ManagedProcess;
  readonly processes = new Map<string, ManagedProcess>();

  constructor(readonly node: BoxNode, readonly dir: string, readonly cgroupRoot: string, private readonly detached: boolean) {}

  /** Runs a program in the node's network and private mount namespaces (where containerd's socket is). */
  get wrap(): string[] {
    if (!this.holder) throw new RealNodeError(`node ${this.node.name} has no mount holder`);
    return ['nsenter', '-t', String(this.holder.pid), '-m', '-u', '-n', '--'];
  }

  exec(cmd: string, args: string[], opts?: { input?: string }): Promise<RunResult> {
    const [program, ...prefix] = this.wrap;
    return hostExec.run(program!, [...prefix, cmd, ...args], opts);
  }

  /** `ctr -n k8s.io …` against this node's containerd. */
  ctr(args: string[]): Promise<RunResult> {
    return this.exec('ctr', ['--address', CONTAINERD_SOCKET, '-n', 'k8s.io', ...args]);
  }

  spawn(name: string, command: string, args: string[]): ManagedProcess {
    const [program, ...prefix] = this.wrap;
    const proc = ManagedProcess.start({
      name: `${this.node.name}/${name}`, command: program!, args: [...prefix, command, ...args],
      logFile: join(this.node.logDir, `${name}.log`), detached: this.detached,
    });
    this.processes.set(name, proc);
    return proc;
  }

  /** The private mount namespace: tmpfs over the runtime state, sysctl shims, hostname = node name. */
  async startHolder(): Promise<void> {
    const shimDir = join(this.dir, 'sysctl');
    mkdirSync(shimDir, { recursive: true });
    const lines = ['set -e', 'echo "$0" > /proc/sys/kernel/hostname'];
    for (const path of PRIVATE_TMPFS) lines.push(`mkdir -p ${path}`, `mount -t tmpfs -o mode=0755 raven-node ${path}`);
    mkdirSync(this.containerdRoot, { recursive: true });
    lines.push(`mkdir -p ${CONTAINERD_ROOT}`, `mount --bind ${this.containerdRoot} ${CONTAINERD_ROOT}`);
    for (const [key, value] of Object.entries(KERNEL_DEFAULTS)) {
      const file = join(shimDir, key.replace(/\//g, '.'));
      writeFileSync(file, `${value}\n`);
      lines.push(`mount --bind ${file} /proc/sys/${key}`, `mount -o remount,bind,ro /proc/sys/${key}`);
    }
    lines.push('echo mounts-ready', 'exec sleep infinity');
    const holder = ManagedProcess.start({
      name: `${this.node.name}/node-mounts`,
      command: 'nsenter',
      args: [`--net=/run/netns/${this.node.netns}`, '--', 'unshare', '-m', '-u', '--propagation', 'private', 'sh', '-c', lines.join('\n'), this.node.name],
      logFile: join(this.node.logDir, 'node-mounts.log'), detached: this.detached,
    });
    this.holder = holder;
    await waitFor(`the mount namespace of ${this.node.name}`, async () => {
      holder.assertRunning();
      return readFileSync(join(this.node.logDir, 'node-mounts.log'), 'utf8').includes('mounts-ready');
    }, 10_000, 20);
  }

  /** Stops the node's components by PID, kills what runs in its cgroups (the pods), then the mount holder. */
  async stop(): Promise<void> {
    for (const name of ['kube-proxy', 'kubelet']) await this.processes.get(name)?.stop(5_000).catch(() => undefined);
    await killCgroupTree(this.cgroupRoot);
    await this.processes.get('containerd')?.stop(5_000).catch(() => undefined);
    for (const proc of this.processes.values()) await proc.stop(2_000).catch(() => undefined);
    this.processes.clear();
    await this.holder?.kill().catch(() => undefined);
    this.holder = undefined;
    // The snapshots' mounts went with the mount namespace; what is left is plain files.
    rmSync(this.containerdRoot, { recursive: true, force: true });
  }

  /** containerd's root on disk, bound over /var/lib/containerd inside the node. */
  get containerdRoot(): string {
    return join(this.dir, 'containerd-root');
  }
}

/** Every cgroup v1 hierarchy mounted under /sys/fs/cgroup (cpu, memory, name=systemd, …), without cgroup2. */
function cgroupHierarchies(): string[] {
  return cgroupMounts().filter((dir) => !existsSync(join(dir, 'cgroup.controllers')));
}

/** Every cgroup mount: the v1 hierarchies and, on a hybrid host, the cgroup2 `unified` one (the kubelet writes there too). */
function cgroupMounts(): string[] {
  if (!existsSync(CGROUP_V1)) return [];
  return readdirSync(CGROUP_V1).map((name) => join(CGROUP_V1, name)).filter((dir) => existsSync(join(dir, 'cgroup.procs')));
}

/** `path` and its ancestors, deepest first, in every cgroup mount where they do not exist yet: what teardown removes. */
function missingCgroupDirs(path: string): string[] {
  const parts = path.split('/').filter(Boolean);
  return cgroupMounts().flatMap((mount) => parts.map((_, i) => join(mount, ...parts.slice(0, i + 1))).filter((dir) => !existsSync(dir))).reverse();
}

/** The deepest cgroup this process is in (v1), so node cgroups go inside our own subtree. */
function ownCgroupBase(): string {
  const paths = readFileSync('/proc/self/cgroup', 'utf8').split('\n').map((line) => line.split(':').slice(2).join(':')).filter((p) => p && p !== '/');
  return paths.sort((a, b) => b.length - a.length)[0] ?? '';
}

/** Creates `path` in every v1 hierarchy (cpusets copied from the parent): the kubelet needs its cgroupRoot to exist. */
function createCgroup(path: string): void {
  for (const hierarchy of cgroupHierarchies()) {
    const parts = path.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const dir = join(hierarchy, ...parts.slice(0, i));
      if (existsSync(dir)) continue;
      mkdirSync(dir);
      if (hierarchy.endsWith('/cpuset')) {
        const parent = join(dir, '..');
        for (const file of ['cpuset.cpus', 'cpuset.mems']) writeFileSync(join(dir, file), readFileSync(join(parent, file), 'utf8'));
      }
    }
  }
}

function cgroupProcs(dir: string): number[] {
  const pids: number[] = [];
  const walk = (d: string) => {
    try {
      pids.push(...readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number));
      for (const entry of readdirSync(d, { withFileTypes: true })) if (entry.isDirectory()) walk(join(d, entry.name));
    } catch {
      // Gone meanwhile.
    }
  };
  walk(dir);
  return pids;
}

/** SIGKILLs every process in the cgroup subtree (in every hierarchy) until none is left. */
async function killCgroupTree(path: string): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const pids = [...new Set(cgroupMounts().flatMap((h) => cgroupProcs(join(h, path))))];
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await sleep(100);
  }
}

/** Removes a cgroup subtree, deepest first, in every mount (the kubelet's kubepods/... included), then the ancestors made for it. */
function removeCgroupTree(path: string, madeDeepestFirst: readonly string[]): void {
  const rm = (dir: string) => {
    try {
      for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) rm(join(dir, entry.name));
      rmdirSync(dir);
    } catch {
      // Busy or gone; the caller reports leftovers.
    }
  };
  for (const mount of cgroupMounts()) rm(join(mount, path));
  for (const dir of madeDeepestFirst) {
    try {
      rmdirSync(dir);
    } catch {
      // Not empty (someone else's) or gone.
    }
  }
}

export class RealNodes {
  readonly nodes = new Map<string, RealNode>();
  private scheduler?: ManagedProcess;
  private controllerManager?: ManagedProcess;
  /** The box's image registry (every node's containerd mirror) and the apiserver's hosts sync: `box/keeper.ts`. */
  private keeper?: ManagedProcess;
  private readonly madeCgroups: string[] = [];
  private exitHook?: () => void;

  private constructor(private readonly opts: RealNodesOptions, private readonly ca: CertificateAuthority) {}

  /** Starts every node's runtime and kubelet, the scheduler, waits for all Nodes Ready with their pod CIDRs. */
  static async up(opts: RealNodesOptions): Promise<RealNodes> {
    for (const bin of ['kubelet', 'kube-proxy', 'kube-scheduler'] as const) binaryPath(bin);
    if (!existsSync(join(CNI_BIN_DIR, 'bridge'))) throw new RealNodeError(`CNI plugins missing in ${CNI_BIN_DIR}; run node scripts/bootstrap.mjs --apt`);
    const rn = new RealNodes(opts, await clusterCa(opts.cluster));
    try {
      await rn.start();
    } catch (err) {
      await rn.down().catch(() => undefined);
      throw err;
    }
    return rn;
  }

  node(name: string): RealNode {
    const node = this.nodes.get(name);
    if (!node) throw new RealNodeError(`no real node ${name}`);
    return node;
  }

  private async start(): Promise<void> {
    const { box } = this.opts;
    const images = boxImages();
    const base = `${ownCgroupBase()}/raven-${box.id}`;
    this.exitHook = () => {
      for (const mount of cgroupMounts()) {
        for (const pid of cgroupProcs(join(mount, base))) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Gone.
          }
        }
      }
    };
    if (!box.detached) process.once('exit', this.exitHook);
    await this.startKeeper([images.sandbox, images.busybox, corednsImage(binaryPath('coredns'))]);
    await this.startScheduler();
    for (const node of box.nodes) {
      const dir = join(box.dir, 'real-nodes', node.name);
      mkdirSync(dir, { recursive: true });
      const cgroupRoot = `${base}/${node.name}`;
      this.madeCgroups.push(...missingCgroupDirs(cgroupRoot));
      createCgroup(cgroupRoot);
      const real = new RealNode(node, dir, cgroupRoot, box.detached);
      this.nodes.set(node.name, real);
      this.saveState();
      // The stand-in pod's veth owns the pod CIDR's gateway address; the CNI bridge takes it over.
      await node.exec('ip', ['link', 'del', node.podInterface]).catch(() => undefined);
      await real.startHolder();
    }
    await Promise.all([...this.nodes.values()].map(async (real) => {
      await this.startContainerd(real);
      for (const image of [images.sandbox, images.busybox]) await real.exec('ctr', ['--address', CONTAINERD_SOCKET, '-n', 'k8s.io', 'images', 'import', '--no-unpack', image]).catch(async (err: unknown) => {
        // Unpacking happens on first use; retry with the default behaviour if this containerd refuses the flag.
        await real.exec('ctr', ['--address', CONTAINERD_SOCKET, '-n', 'k8s.io', 'images', 'import', image]).catch(() => {
          throw err;
        });
      });
    }));
    await Promise.all([...this.nodes.values()].map((real) => this.startKubelet(real)));
    await this.waitNodesRegistered();
    await Promise.all([...this.nodes.values()].map((real) => this.startKubeProxy(real)));
    await this.waitReady();
    await this.exposeApiserver();
    await this.deployProxyDns();
  }

  /** The cloud node that plays the control-plane host: the apiserver is reachable on its InternalIP, and reaches nodes from it. */
  get controlPlaneNode(): RealNode {
    const cloud = [...this.nodes.values()].filter((real) => (this.opts.cloudDomains ?? ['cloud']).includes(real.node.domain));
    const host = cloud.at(-1);
    if (!host) throw new RealNodeError('a real-node box needs a cloud node to host the control plane\'s addresses');
    return host;
  }

  /**
   * Pods reach the apiserver as in a cluster: `kubernetes.default` (10.96.0.1:443) has the control-plane node's
   * InternalIP:6443 as its endpoint (the control plane runs with --endpoint-reconciler-type=none, so the box writes
   * it), where a relay forwards to the apiserver.
   */
  private async exposeApiserver(): Promise<void> {
    const host = this.controlPlaneNode;
    host.spawn('apiserver-endpoint', process.execPath, [RELAY_SCRIPT, `tcp:${host.node.internalIP}:${APISERVER_ENDPOINT_PORT}`, `unix:${this.opts.box.apiserverSocket}`]);
    await this.opts.kube.delete(RESOURCES.endpointSlices, { namespace: 'default', name: KUBERNETES_ENDPOINTS }).catch(() => undefined);
    await this.opts.kube.create(RESOURCES.endpointSlices, {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', addressType: 'IPv4',
      metadata: { name: KUBERNETES_ENDPOINTS, namespace: 'default', labels: { 'kubernetes.io/service-name': 'kubernetes', 'endpointslice.kubernetes.io/managed-by': 'raven-box' } },
      endpoints: [{ addresses: [host.node.internalIP], conditions: { ready: true } }],
      ports: [{ name: 'https', port: APISERVER_ENDPOINT_PORT, protocol: 'TCP' }],
    });
  }

  /**
   * k8s/base's raven-proxy-dns, applied unchanged: CoreDNS pods on the cloud nodes serving the edge-tunnel-nodes
   * hosts file. Then the apiserver's egress proxy on the control-plane node resolves node names through its ClusterIP.
   */
  /** raven-proxy-dns's ClusterIP, which the apiserver's egress proxy resolves node names with. */
  proxyDnsIP?: string;

  private async deployProxyDns(): Promise<void> {
    const { cluster } = this.opts;
    await kubectl(cluster.kubeconfig, ['apply', '-f', PROXY_DNS_MANIFEST]);
    await kubectl(cluster.kubeconfig, ['-n', SYSTEM_NAMESPACE, 'rollout', 'status', 'deployment/raven-proxy-dns', '--timeout=120s']);
    const dnsIP = await kubectl(cluster.kubeconfig, ['-n', SYSTEM_NAMESPACE, 'get', 'service', 'raven-proxy-dns', '-o', 'jsonpath={.spec.clusterIP}']);
    this.proxyDnsIP = dnsIP.trim();
    const host = this.controlPlaneNode;
    const socket = join(cluster.dir, CLUSTER_EGRESS_SOCKET);
    const proxy = host.spawn('apiserver-egress', process.execPath, [CONNECT_PROXY_SCRIPT, `unix:${socket}`, `dns:${dnsIP.trim()}`, ...(this.opts.box.detached ? [] : [`watch-pid:${process.pid}`])]);
    await waitFor('the apiserver egress proxy', async () => {
      proxy.assertRunning();
      return existsSync(socket);
    }, 10_000, 50);
  }

  /**
   * The keeper process (see box/keeper.ts) serves the registry, and keeps the apiserver's hosts file equal to the
   * machine's plus edge-tunnel-nodes: the apiserver's own lookups of node names (its node proxy checks that a name
   * resolves before it dials) then see what raven-proxy-dns serves. The apiserver runs in the machine's network
   * namespace, where the DNS Service's ClusterIP is not reachable.
   */
  private async startKeeper(images: string[]): Promise<void> {
    const { box, cluster } = this.opts;
    const socket = registrySocket(box.dir);
    rmSync(socket, { force: true });
    const keeper = ManagedProcess.start({
      name: 'box/keeper', command: process.execPath,
      args: ['--import', TSX_LOADER, KEEPER_SCRIPT, socket, join(cluster.dir, APISERVER_HOSTS_FILE), cluster.kubeconfig, box.detached ? 'detached' : `watch-pid:${process.pid}`, ...images],
      logFile: join(box.dir, 'logs', 'keeper.log'), detached: box.detached,
    });
    this.keeper = keeper;
    this.saveState();
    await waitFor('the box keeper (image registry)', async () => {
      keeper.assertRunning();
      return existsSync(socket);
    }, 30_000, 50);
  }

  private saveState(): void {
    const base = `${ownCgroupBase()}/raven-${this.opts.box.id}`;
    const state: RealNodesState = {
      cgroupBase: base, madeCgroups: this.madeCgroups, nodes: [...this.nodes.keys()], adminKubeconfig: this.opts.cluster.kubeconfig,
      pids: [this.keeper, this.scheduler, this.controllerManager].flatMap((p) => (p ? [p.pid] : [])),
    };
    writeFileSync(join(this.opts.box.dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
  }

  /**
   * Tears down what a detached real-node box left (demo `--keep`), after `Box.downFromState` removed its namespaces
   * and with them every node's processes: the keeper, scheduler and controller manager, the pods through their
   * cgroups, the cgroups, and the Nodes. False if there is none.
   */
  static async downFromState(boxDir: string): Promise<boolean> {
    const file = join(boxDir, STATE_FILE);
    if (!existsSync(file)) return false;
    const state = JSON.parse(readFileSync(file, 'utf8')) as RealNodesState;
    for (const pid of state.pids) if (pidAlive(pid)) process.kill(pid, 'SIGTERM');
    await waitFor('the real-node box\'s processes to end', async () => state.pids.every((pid) => !pidAlive(pid)), 10_000, 100).catch(() => {
      for (const pid of state.pids) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    });
    await killCgroupTree(state.cgroupBase);
    removeCgroupTree(state.cgroupBase, state.madeCgroups);
    if (existsSync(state.adminKubeconfig)) {
      const kube = await KubeClient.load({ kubeconfig: state.adminKubeconfig, userAgent: 'raven-box' });
      try {
        await Promise.all(state.nodes.map((name) => kube.delete(RESOURCES.nodes, { name }).catch(() => undefined)));
      } finally {
        kube.close();
      }
    }
    rmSync(file, { force: true });
    return true;
  }

  private async clientKubeconfig(file: string, commonName: string, organizations: string[], server = INSIDE_APISERVER): Promise<string> {
    const pair = await issueCertificate(this.ca, { commonName, organizations, usages: ['client'], validityDays: 2 });
    return writeKubeconfig(file, server, this.opts.cluster.caPem, { clientCertPem: pair.certPem, clientKeyPem: pair.keyPem }, commonName.replace(/\W/g, '-'));
  }

  /** The upstream resolver of pods with dnsPolicy Default: an address on the box's internet where nothing answers (no internet here). */
  private resolvConf(): string {
    const file = join(this.opts.box.dir, 'real-nodes', 'resolv.conf');
    if (!existsSync(file)) writeFileSync(file, 'nameserver 198.18.0.53\n');
    return file;
  }

  /**
   * kube-scheduler, and the workload controllers that the shared control plane's kube-controller-manager leaves out
   * (without real kubelets there is nothing for Deployments to run on).
   */
  private async startScheduler(): Promise<void> {
    const dir = join(this.opts.box.dir, 'real-nodes');
    mkdirSync(dir, { recursive: true });
    const schedulerKubeconfig = await this.clientKubeconfig(join(dir, 'kube-scheduler.kubeconfig'), 'system:kube-scheduler', [], this.opts.cluster.server);
    this.scheduler = ManagedProcess.start({
      name: 'kube-scheduler', command: binaryPath('kube-scheduler'),
      args: [`--kubeconfig=${schedulerKubeconfig}`, `--authentication-kubeconfig=${schedulerKubeconfig}`, `--authorization-kubeconfig=${schedulerKubeconfig}`, '--leader-elect=false', '--secure-port=0', '--v=1'],
      logFile: join(this.opts.box.dir, 'logs', 'kube-scheduler.log'), detached: this.opts.box.detached,
    });
    await this.startControllerManager();
  }

  /** As ControlPlane.restartControllerManager: what a leader-elected KCM does after an apiserver outage longer than its lease. */
  async restartControllerManager(): Promise<void> {
    await this.controllerManager?.stop();
    await this.startControllerManager();
  }

  private async startControllerManager(): Promise<void> {
    const dir = join(this.opts.box.dir, 'real-nodes');
    const kcmKubeconfig = await this.clientKubeconfig(join(dir, 'kube-controller-manager.kubeconfig'), 'system:kube-controller-manager', [], this.opts.cluster.server);
    this.controllerManager = ManagedProcess.start({
      name: 'box/kube-controller-manager', command: binaryPath('kube-controller-manager'),
      args: [
        `--kubeconfig=${kcmKubeconfig}`, `--controllers=${BOX_CONTROLLERS.join(',')}`, '--use-service-account-credentials=true',
        '--leader-elect=false', '--secure-port=0', '--v=1',
      ],
      logFile: join(this.opts.box.dir, 'logs', 'kube-controller-manager.log'), detached: this.opts.box.detached,
    });
    this.saveState();
  }

  private async startContainerd(real: RealNode): Promise<void> {
    const { node, dir } = real;
    const cniDir = join(dir, 'cni');
    mkdirSync(cniDir, { recursive: true });
    writeFileSync(join(cniDir, '10-raven-box.conflist'), JSON.stringify({
      cniVersion: '0.4.0', name: 'raven-box',
      plugins: [
        {
          type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: false, hairpinMode: true, mtu: node.mtu,
          ipam: { type: 'host-local', ranges: [[{ subnet: node.podCIDR }]], routes: [{ dst: '0.0.0.0/0' }] },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    }, null, 2));
    const config = [
      'version = 2',
      'root = "/var/lib/containerd"',
      'state = "/run/containerd"',
      `disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]`,
      '[grpc]',
      `  address = "${CONTAINERD_SOCKET}"`,
      '[plugins."io.containerd.grpc.v1.cri"]',
      `  sandbox_image = "${SANDBOX_IMAGE}"`,
      // Root here lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below ours.
      '  restrict_oom_score_adj = true',
      '  disable_apparmor = true',
      '  [plugins."io.containerd.grpc.v1.cri".cni]',
      `    bin_dir = "${CNI_BIN_DIR}"`,
      `    conf_dir = "${cniDir}"`,
      // Every pull goes to the box's registry (a relay on the node's loopback), as to a pull-through mirror.
      ...['docker.io', 'registry.k8s.io'].flatMap((host) => [
        `  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."${host}"]`,
        `    endpoint = ["http://127.0.0.1:${REGISTRY_PORT}"]`,
      ]),
      '  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
      '    runtime_type = "io.containerd.runc.v2"',
      '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
      '      SystemdCgroup = false',
      '',
    ].join('\n');
    writeFileSync(join(dir, 'containerd.toml'), config);
    const proc = real.spawn('containerd', 'containerd', ['--config', join(dir, 'containerd.toml'), '--log-level', 'warn']);
    await waitFor(`containerd on ${node.name}`, async () => {
      proc.assertRunning();
      return real.ctr(['version']).then(() => true, () => false);
    }, 30_000, 100);
  }

  private async startKubelet(real: RealNode): Promise<void> {
    const { node, dir } = real;
    const { cluster } = this.opts;
    const kubeconfig = await this.clientKubeconfig(join(dir, 'kubelet.kubeconfig'), `system:node:${node.name}`, ['system:nodes']);
    const serving = await issueCertificate(this.ca, { commonName: node.name, dnsNames: [node.name], ipAddresses: [node.internalIP], usages: ['server'], validityDays: 2 });
    writeFileSync(join(dir, 'kubelet.crt'), serving.certPem);
    writeFileSync(join(dir, 'kubelet.key'), serving.keyPem, { mode: 0o600 });
    writeFileSync(join(dir, 'ca.crt'), cluster.caPem);
    const kubeletConfig = {
      apiVersion: 'kubelet.config.k8s.io/v1beta1', kind: 'KubeletConfiguration',
      address: node.internalIP, port: 10250, readOnlyPort: 0, healthzBindAddress: '127.0.0.1', healthzPort: 10248,
      tlsCertFile: join(dir, 'kubelet.crt'), tlsPrivateKeyFile: join(dir, 'kubelet.key'),
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: join(dir, 'ca.crt') } },
      authorization: { mode: 'Webhook' },
      containerRuntimeEndpoint: `unix://${CONTAINERD_SOCKET}`,
      cgroupDriver: 'cgroupfs', cgroupRoot: real.cgroupRoot, failCgroupV1: false, failSwapOn: false,
      makeIPTablesUtilChains: false, protectKernelDefaults: true, resolvConf: this.resolvConf(),
      // ConfigMap volumes (raven-proxy-dns's hosts file) follow their ConfigMap within seconds, not a minute.
      syncFrequency: '10s',
      clusterDomain: 'cluster.local', podCIDR: node.podCIDR, maxPods: 30,
      // The machine's disk and memory are shared: evict only when really short.
      evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
      imageGCHighThresholdPercent: 100, imageGCLowThresholdPercent: 99,
      localStorageCapacityIsolation: false, serializeImagePulls: false, registerNode: true,
    };
    writeFileSync(join(dir, 'kubelet.yaml'), stringify(kubeletConfig));
    // The Gateway label is the admin's to set (a kubelet may not: raven-node-gateway-label); see waitNodesRegistered.
    const labels = { [EDGE_WORKER_LABEL]: (this.opts.cloudDomains ?? ['cloud']).includes(node.domain) ? 'false' : 'true' };
    real.spawn('kubelet', binaryPath('kubelet'), [
      `--config=${join(dir, 'kubelet.yaml')}`, `--kubeconfig=${kubeconfig}`, `--hostname-override=${node.name}`,
      `--node-ip=${node.internalIP}`, `--node-labels=${Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',')}`, '--v=2',
    ]);
  }

  private async startKubeProxy(real: RealNode): Promise<void> {
    const { node, dir } = real;
    const kubeconfig = await this.clientKubeconfig(join(dir, 'kube-proxy.kubeconfig'), 'system:kube-proxy', []);
    writeFileSync(join(dir, 'kube-proxy.yaml'), stringify({
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1', kind: 'KubeProxyConfiguration',
      clientConnection: { kubeconfig }, mode: 'iptables', hostnameOverride: node.name,
      bindAddress: node.internalIP, healthzBindAddress: '127.0.0.1:10256', metricsBindAddress: '127.0.0.1:10249',
      clusterCIDR: this.opts.box.topology.podRange.text,
      // Leave the machine's conntrack table sizes and timeouts alone.
      conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
    }));
    real.spawn('kube-proxy', binaryPath('kube-proxy'), [`--config=${join(dir, 'kube-proxy.yaml')}`, '--v=1']);
  }

  /**
   * The kubelet registers the Node; then the admin's part, as the walkthrough does it: the Gateway label, and the
   * box's pod CIDR (what nodeipam would assign, and what Raven routes).
   */
  private async waitNodesRegistered(): Promise<void> {
    const { kube } = this.opts;
    await Promise.all([...this.nodes.values()].map(async (real) => {
      await waitFor(`Node ${real.node.name} registered by its kubelet`, async () => {
        real.processes.get('kubelet')?.assertRunning();
        return kube.get(RESOURCES.nodes, { name: real.node.name }).then(() => true, () => false);
      }, 60_000, 200);
      const labels = real.node.gateway ? { [LABELS.gateway]: real.node.gateway } : {};
      await kube.patch(RESOURCES.nodes, { name: real.node.name }, { metadata: { labels }, spec: { podCIDR: real.node.podCIDR, podCIDRs: [real.node.podCIDR] } }, 'merge');
    }));
  }

  async waitReady(timeoutMs = 120_000): Promise<void> {
    type NodeObj = { metadata: { name: string }; status?: { conditions?: Array<{ type: string; status: string }> } };
    await waitFor('every real node Ready', async () => {
      for (const real of this.nodes.values()) real.processes.get('kubelet')?.assertRunning();
      const items = (await this.opts.kube.list<NodeObj>(RESOURCES.nodes)).items;
      return [...this.nodes.keys()].every((name) => items.find((n) => n.metadata.name === name)?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    }, timeoutMs, 500);
  }

  /**
   * Resident memory of the real-node machinery: every node's components (containerd, kubelet, kube-proxy, relays),
   * the pods and their shims (the cgroup trees), the scheduler, the box's controller manager and its keeper.
   */
  residentBytes(): { total: number; proportional: number; byComponent: Record<string, number> } {
    // RSS counts the pages that the seven kubelets (and kube-proxies, containerds) share from one binary once per
    // process; PSS splits each shared page among its users, so its sum is what the box really costs.
    const kib = (file: string, field: string) => {
      try {
        const value = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(file, 'utf8'))?.[1];
        return value ? Number(value) * 1024 : 0;
      } catch {
        return 0;
      }
    };
    let proportional = 0;
    const rss = (pid: number) => {
      proportional += kib(`/proc/${pid}/smaps_rollup`, 'Pss');
      return kib(`/proc/${pid}/status`, 'VmRSS');
    };
    const byComponent: Record<string, number> = {};
    const add = (name: string, bytes: number) => (byComponent[name] = (byComponent[name] ?? 0) + bytes);
    const seen = new Set<number>();
    const count = (name: string, pid: number) => {
      if (seen.has(pid)) return;
      seen.add(pid);
      add(name, rss(pid));
    };
    for (const real of this.nodes.values()) {
      for (const [name, proc] of real.processes) count(name, proc.pid);
      for (const pid of cgroupMounts().flatMap((m) => cgroupProcs(join(m, real.cgroupRoot)))) count('pods', pid);
    }
    for (const [name, proc] of [['kube-scheduler', this.scheduler], ['kube-controller-manager', this.controllerManager], ['keeper', this.keeper]] as const) if (proc) add(name, rss(proc.pid));
    return { total: Object.values(byComponent).reduce((a, b) => a + b, 0), proportional, byComponent };
  }

  /** Stops everything by PID, kills the pods through their cgroups, removes the cgroups and the Nodes. */
  async down(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((real) => real.stop()));
    await this.scheduler?.stop().catch(() => undefined);
    await this.controllerManager?.stop().catch(() => undefined);
    // The keeper restores the apiserver's hosts file as it ends.
    await this.keeper?.stop().catch(() => undefined);
    await kubectl(this.opts.cluster.kubeconfig, ['delete', '--ignore-not-found', '--wait=false', '-f', PROXY_DNS_MANIFEST]).catch(() => undefined);
    await this.opts.kube.delete(RESOURCES.endpointSlices, { namespace: 'default', name: KUBERNETES_ENDPOINTS }).catch(() => undefined);
    const base = this.nodes.values().next().value?.cgroupRoot.replace(/\/[^/]+$/, '');
    if (base) {
      await killCgroupTree(base);
      removeCgroupTree(base, this.madeCgroups);
    }
    if (this.exitHook) process.removeListener('exit', this.exitHook);
    await Promise.all([...this.nodes.keys()].map((name) => this.opts.kube.delete(RESOURCES.nodes, { name }).catch(() => undefined)));
    this.nodes.clear();
    rmSync(join(this.opts.box.dir, STATE_FILE), { force: true });
  }
}

/** Where a real-node box's registry listens; every node's relay forwards its 127.0.0.1:5000 there (`realNodeRelays`). */
const registrySocket = (boxDir: string) => join(boxDir, 'registry.sock');

/** The relays a box for real nodes gives every node (Box option `nodeRelays`): the image registry on the node's loopback. */
export function realNodeRelays(boxDir: string): RelayPair[] {
  return [{ listen: `tcp:127.0.0.1:${REGISTRY_PORT}`, connect: `unix:${registrySocket(boxDir)}` }];
}

/** Leftover cgroups named after a box (for the "nothing left behind" check). */
export function leftoverBoxCgroups(boxId: string): string[] {
  const base = `${ownCgroupBase()}/raven-${boxId}`;
  return cgroupMounts().map((h) => join(h, base)).filter((dir) => existsSync(dir));
}

