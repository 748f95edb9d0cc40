import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROXY_SERVICE_ACCOUNTS } from '@raven/api-types';
import { RESOURCES, type KubeClient } from '@raven/controller-kit';
import { issueCertificate } from '@raven/pki';
import { appCommand } from './apps.ts';
import { binaryPath } from './binaries.ts';
import { startApp, type AppProcess } from './app-process.ts';
import { Box, INSIDE_APISERVER, WALKTHROUGH_DIR, type BoxNode, type BoxTopology } from './box/index.ts';
import type { ClusterInfo } from './cluster.ts';
import { adminClient } from './clients.ts';
import { kubectl } from './kubectl.ts';
import { boundKubeconfig, clusterCa, deletePod } from './l7.ts';
import type { ManagedProcess } from './process.ts';
import { waitFor } from './process.ts';
import { deployRaven, installRaven, type InstallMethod } from './raven-deploy.ts';
import { RealNodes, realNodeRelays } from './real-nodes.ts';

export interface RavenBoxOptions {
  dir: string;
  cluster: ClusterInfo;
  topology?: BoxTopology;
  /** Extra tunnel-agent flags (for example `--vpn-driver=libreswan`). */
  agentArgs?: string[];
  /** The userspace WireGuard the agents run (default: the pinned wireguard-go built from its Go module). */
  wireguardGo?: string;
  /** Apply the walkthrough's Gateways and raven-cfg (default true). */
  walkthrough?: boolean;
  detached?: boolean;
  /**
   * Real Kubernetes nodes: containerd, kubelet and kube-proxy on every box node and a kube-scheduler; the kubelets
   * register the Nodes and keep them Ready (the box registers none and sends no heartbeats).
   */
  realNodes?: boolean;
  /**
   * The L7 proxy as its DaemonSets deploy it: proxy-server on every cloud node, proxy-client on every other node (each
   * decides from the Gateways whether it is active), certificates from the CSR API, and pickup's CSR approver.
   * Default: on with real nodes.
   */
  l7?: boolean;
  /**
   * Install Raven as Pods of its own images instead of host processes (real nodes only): the images imported into
   * every containerd, then `kubectl apply --server-side -k` of this overlay (default k8s/overlays/box), as the README's
   * "Install on a cluster" says. Use with a cluster started with `webhook: false`.
   */
  deploy?: { install?: InstallMethod; log?: (line: string) => void };
}

/** Domains whose nodes run proxy-server (the rest run proxy-client). */
const CLOUD_DOMAINS = ['cloud'];
/** The client identity proxy-server presents to kubelets (a certificate file, bound to system:kubelet-api-admin). */
export const PROXY_TARGET_CLIENT_USER = 'raven:proxy-server-kubelet-client';

/**
 * Raven on the cluster in a box: gateway-pickup (with its own ServiceAccount) and a tunnel-agent inside every node
 * namespace (with the tunnel-agent ServiceAccount, reaching the apiserver through the box's relay), exactly as the
 * walkthrough deploys them. The box plays the kubelet's part for Node status only.
 */
export class RavenBox {
  readonly agents = new Map<string, ManagedProcess>();
  /** `proxy-server/<node>` and `proxy-client/<node>`. */
  readonly proxies = new Map<string, ManagedProcess>();
  /** Per node: a tunnel-agent token bound to a Pod on that node, as the DaemonSet's projected token is. */
  private readonly agentKubeconfigs = new Map<string, string>();
  private readonly agentPods: string[] = [];
  /** Set when the box runs real nodes (`realNodes: true`). */
  realNodes?: RealNodes;

  private constructor(
    /** The host-process gateway-pickup; none when Raven runs as Pods (`deploy`). */
    readonly box: Box, readonly pickup: AppProcess | undefined, readonly kube: KubeClient, private readonly opts: RavenBoxOptions,
    /** The userspace WireGuard binary every agent runs. */
    readonly wireguardGo: string,
  ) {}

  static async up(opts: RavenBoxOptions): Promise<RavenBox> {
    const wireguardGo = opts.wireguardGo ?? binaryPath('wireguard-go'); // missing: fail before anything starts
    const box = await Box.up({ dir: opts.dir, cluster: opts.cluster, topology: opts.topology, detached: opts.detached, registerNodes: !opts.realNodes,
      nodeRelays: opts.realNodes ? realNodeRelays(opts.dir) : [],
    });
    let pickup: AppProcess | undefined;
    let realNodes: RealNodes | undefined;
    const l7 = opts.l7 ?? opts.realNodes ?? false;
    try {
      const kube = await adminClient(opts.cluster);
      if (opts.realNodes) realNodes = await RealNodes.up({ box, cluster: opts.cluster, kube, cloudDomains: CLOUD_DOMAINS });
      if (opts.deploy) {
        if (!realNodes) throw new Error('RavenBox: deploy needs realNodes');
        await deployRaven({ box, realNodes, cluster: opts.cluster, cloudDomains: CLOUD_DOMAINS, install: opts.deploy.install, log: opts.deploy.log });
        const rb = new RavenBox(box, undefined, kube, opts, wireguardGo);
        rb.realNodes = realNodes;
        return rb;
      }
      if (opts.walkthrough ?? true) {
        await kubectl(opts.cluster.kubeconfig, ['apply', '-f', join(WALKTHROUGH_DIR, 'raven-cfg.yaml'), '-f', join(WALKTHROUGH_DIR, 'gateways.yaml')]);
      }
      // The tunnel PSK, as an operator creates it at install time (no default is shipped).
      await kubectl(opts.cluster.kubeconfig, ['create', 'secret', 'generic', 'raven-agent-secret', '-n', 'kube-system', `--from-literal=vpn-connection-psk=${randomBytes(24).toString('base64')}`, '--dry-run=client', '-o', 'yaml'])
        .then((manifest) => kubectl(opts.cluster.kubeconfig, ['apply', '-f', '-'], manifest));
      pickup = await startApp('gateway-pickup', {
        access: opts.cluster, serviceAccount: 'raven-gateway-pickup', name: 'gateway-pickup',
        args: [`--controllers=gatewaypickup,gatewaydns,gatewayinternalservice,gatewaypublicservice${l7 ? ',csrapprover' : ''}`, '--leader-elect=false'],
        detached: opts.detached,
      });
      const rb = new RavenBox(box, pickup, kube, opts, wireguardGo);
      rb.realNodes = realNodes;
      for (const node of box.nodes) await rb.bindAgent(node.name);
      for (const node of box.nodes) rb.startAgent(node);
      if (l7) await rb.startProxies();
      return rb;
    } catch (err) {
      await pickup?.stop();
      await realNodes?.down().catch(() => undefined);
      await box.down();
      throw err;
    }
  }

  /** The tunnel-agent's admission policy lets only a token bound to a Pod on the node write that node's key. */
  private async bindAgent(node: string): Promise<void> {
    const { kubeconfig, pod } = await boundKubeconfig(
      this.kube, { server: INSIDE_APISERVER, caPem: this.opts.cluster.caPem }, 'raven-tunnel-agent', node, join(this.opts.dir, 'kubeconfigs'), this.box.id, 86_400,
    );
    this.agentKubeconfigs.set(node, kubeconfig);
    this.agentPods.push(pod);
  }

  startAgent(node: BoxNode): ManagedProcess {
    const { command, args } = appCommand('tunnel-agent');
    const proc = node.spawn(command, [
      ...args, `--kubeconfig=${this.agentKubeconfigs.get(node.name)}`, `--node-name=${node.name}`, `--state-dir=${node.stateDir}`,
      '--forward-node-ip', '--health-bind=127.0.0.1', `--wireguard-go=${this.wireguardGo}`, ...(this.opts.agentArgs ?? []),
    ], { name: 'tunnel-agent' });
    this.agents.set(node.name, proc);
    return proc;
  }

  /** proxy-server on every cloud node and proxy-client on every other, with Pod-bound tokens as their DaemonSets' are. */
  private async startProxies(): Promise<void> {
    const dir = join(this.opts.dir, 'kubeconfigs');
    const identity = await issueCertificate(await clusterCa(this.opts.cluster), { commonName: PROXY_TARGET_CLIENT_USER, usages: ['client'], validityDays: 2 });
    const certFile = join(dir, 'proxy-target-client.crt');
    const keyFile = join(dir, 'proxy-target-client.key');
    writeFileSync(certFile, identity.certPem);
    writeFileSync(keyFile, identity.keyPem, { mode: 0o600 });
    await kubectl(this.opts.cluster.kubeconfig, ['apply', '--server-side', '-f', '-'], JSON.stringify({
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'raven-box:proxy-server-kubelet-client' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:kubelet-api-admin' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: PROXY_TARGET_CLIENT_USER }],
    }));
    for (const node of this.box.nodes) {
      const server = CLOUD_DOMAINS.includes(node.domain);
      const app = server ? 'proxy-server' : 'proxy-client';
      const { kubeconfig, pod } = await boundKubeconfig(
        this.kube, { server: INSIDE_APISERVER, caPem: this.opts.cluster.caPem }, server ? PROXY_SERVICE_ACCOUNTS.server : PROXY_SERVICE_ACCOUNTS.client,
        node.name, dir, this.box.id, 86_400,
      );
      this.agentPods.push(pod);
      const { command, args } = appCommand(app);
      const extra = server ? [`--target-client-cert-file=${certFile}`, `--target-client-key-file=${keyFile}`, `--cert-dir=${join(node.stateDir, 'proxy-server-certs')}`] : [];
      this.proxies.set(`${app}/${node.name}`, node.spawn(command, [...args, `--kubeconfig=${kubeconfig}`, `--node-name=${node.name}`, ...extra], { name: app }));
    }
  }

  async restartAgent(name: string, signal: 'SIGTERM' | 'SIGKILL'): Promise<ManagedProcess> {
    const proc = this.agents.get(name);
    if (proc) await (signal === 'SIGKILL' ? proc.kill() : proc.stop());
    return this.startAgent(this.box.node(name));
  }

  /** GET on a tunnel-agent's health server inside its node namespace. */
  agentHealth(node: string, path: '/readyz' | '/healthz' | '/metrics'): Promise<{ status: number; body: string }> {
    // As a Pod (the DaemonSet) the agent serves on its node's InternalIP; as a host process on loopback.
    return this.nodeGet(node, this.opts.deploy ? this.box.node(node).internalIP : '127.0.0.1', 10275, path);
  }

  /** An HTTP GET from inside a node's network namespace (health ports bound to the node's address); status 0 when unreachable. */
  async nodeGet(node: string, host: string, port: number, path: string): Promise<{ status: number; body: string }> {
    const url = new URL(path, `http://${host}:${port}`).href;
    const script = `fetch(${JSON.stringify(url)}).then(async (r) => { process.stdout.write(r.status + '\\n' + await r.text()); }, (e) => { process.stdout.write('0\\n' + e.message); })`;
    const { stdout } = await this.box.node(node).exec(process.execPath, ['-e', script]);
    const [status, ...body] = stdout.split('\n');
    return { status: Number(status), body: body.join('\n') };
  }

  /** Installs Raven again on a box deployed with `deploy` after an uninstall (the images are on the nodes already). */
  async reinstall(install: InstallMethod): Promise<void> {
    if (!this.opts.deploy) throw new Error('RavenBox.reinstall: the box was not deployed from images');
    // The apiserver's egress proxy resolves node names through raven-proxy-dns at the address it had at the box's
    // start: a reinstall keeps it, as an operator pins it for the apiserver's dnsConfig.
    const dnsIP = this.realNodes?.proxyDnsIP;
    const pinned: InstallMethod = install.kind === 'helm' && dnsIP ? { ...install, values: { 'proxyDns.clusterIP': dnsIP, ...install.values } } : install;
    await installRaven({ box: this.box, cluster: this.opts.cluster, cloudDomains: CLOUD_DOMAINS, install: pinned, log: this.opts.deploy.log });
  }

  /**
   * Waits until every Gateway has its tunnel endpoint elected with a published key, every gateway reports all its
   * peers Connected (handshakes done, probes answered through the tunnel), and every agent is ready.
   */
  async waitConverged(timeoutMs = 60_000): Promise<void> {
    let missing = '';
    await waitFor('every Gateway elected and connected, every agent ready', async () => {
      type Gw = {
        metadata: { name: string };
        spec?: { endpoints?: Array<{ type: string }> };
        status?: { activeEndpoints?: Array<{ type: string; config?: Record<string, string> }>; connections?: Array<{ status: string }> };
      };
      const gws = (await this.kube.list<Gw>(RESOURCES.gateways)).items.filter((g) => g.spec?.endpoints?.some((e) => e.type === 'tunnel'));
      const unpublished = gws.filter((g) => !g.status?.activeEndpoints?.some((e) => e.type === 'tunnel' && e.config?.publicKey));
      if (unpublished.length > 0) {
        missing = `no elected tunnel endpoint with a key: ${unpublished.map((g) => g.metadata.name).join(', ')}`;
        return false;
      }
      const unconnected = gws.length < 2 ? [] : gws.filter((g) => (g.status?.connections ?? []).length < gws.length - 1 || !g.status!.connections!.every((c) => c.status === 'Connected'));
      if (unconnected.length > 0) {
        missing = `not connected to every peer: ${unconnected.map((g) => `${g.metadata.name} ${JSON.stringify(g.status?.connections ?? [])}`).join('; ')}`;
        return false;
      }
      for (const node of this.box.nodes.filter((n) => n.isUp)) {
        if ((await this.agentHealth(node.name, '/readyz')).status !== 200) {
          missing = `agent not ready on ${node.name}`;
          return false;
        }
        // Every node of a Gateway has a role in the data path once it has caught up.
        if (node.gateway && /raven_tunnel_role\{role="none"\} 1/.test((await this.agentHealth(node.name, '/metrics')).body)) {
          missing = `agent on ${node.name} has no data-path role yet`;
          return false;
        }
      }
      return true;
    }, timeoutMs, 250).catch(async (err: Error) => {
      // The box's logs go with it; keep the agents' last words in the failure.
      const tails = await Promise.all(this.box.nodes.filter((n) => n.isUp).map(async (n) => `--- ${n.name}\n${await this.agentLogTail(n.name, 8)}`));
      throw new Error(`${err.message}; ${missing}\n${tails.join('\n')}`);
    });
  }

  private async agentLogTail(node: string, lines: number): Promise<string> {
    try {
      if (!this.opts.deploy) return this.agentLog(node).trimEnd().split('\n').slice(-lines).join('\n');
      const pod = (await kubectl(this.opts.cluster.kubeconfig, ['-n', 'kube-system', 'get', 'pods', '-l', 'app.kubernetes.io/name=raven-tunnel-agent', '--field-selector', `spec.nodeName=${node}`, '-o', 'jsonpath={.items[0].metadata.name}'])).trim();
      return pod ? (await kubectl(this.opts.cluster.kubeconfig, ['-n', 'kube-system', 'logs', pod, `--tail=${lines}`])).trimEnd() : '(no tunnel-agent Pod)';
    } catch {
      return '(no log)';
    }
  }

  agentLog(node: string): string {
    return readFileSync(join(this.box.node(node).logDir, 'tunnel-agent.log'), 'utf8');
  }

  async down(): Promise<void> {
    for (const proc of [...this.proxies.values(), ...this.agents.values()]) await proc.stop(2_000).catch(() => undefined);
    await this.pickup?.stop().catch(() => undefined);
    for (const pod of this.agentPods) await deletePod(this.kube, pod).catch(() => undefined);
    await this.realNodes?.down().catch(() => undefined);
    this.kube.close();
    await this.box.down();
  }
}
