import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { z } from 'zod';
import { LABELS, SYSTEM_NAMESPACE } from '@raven/api-types';
import { isAlreadyExists, isNotFound, KubeClient, metaTime, RESOURCES } from '@raven/controller-kit';
import type { ClusterInfo } from '../cluster.ts';
import { destroyNetns, listNetns } from '../netns.ts';
import { deleteNode, registerNode, setNodeReady, type FakeNode } from '../nodes.ts';
import { ManagedProcess, pidAlive } from '../process.ts';
import { serviceAccountKubeconfig } from '../service-accounts.ts';
import { BoxRouter, NetnsHost, type BoxHost } from './hosts.ts';
import {
  BoxControlError, countedBytes, countListingCommand, countSetupCommands, routerNatCommands, runBoxCommands, udpBlockCommands,
  wanDelayCommands, wanReaddressCommands,
} from './controls.ts';
import { addNetns, buildInternet, buildNode, buildRouter, netnsHandle } from './network.ts';
import { BoxNode, INSIDE_APISERVER, RELAY_SCRIPT, waitForLog, type RelayPair } from './node.ts';
import {
  capture, connectivityMatrix, ping, type Capture, type CaptureOptions, type ConnectivityPair, type ConnectivityRow,
  type MatrixOptions, type PingOptions, type PingResult,
} from './probes.ts';
import { deleteNetnsSync, killNetnsProcesses, killQuietly } from './sweep.ts';
import {
  assertWanAddressFree, BOX_NAT_MODES, resolveTopology, walkthroughTopology, type BoxNatMode, type BoxTopology, type ResolvedDomain,
  type ResolvedTopology,
} from './topology.ts';

export interface BoxOptions {
  /** Logs, node state directories, kubeconfigs, the apiserver socket and `box.json`. Left in place by `down()`. */
  dir: string;
  cluster: Pick<ClusterInfo, 'server' | 'kubeconfig' | 'caPem'>;
  /** Defaults to the user walkthrough's three domains and six nodes. */
  topology?: BoxTopology;
  /** Underlay MTU of every link; default 1500. */
  mtu?: number;
  /** Leave everything running when this process exits (demo `--keep`); tear down later with `Box.downFromState(dir)`. */
  detached?: boolean;
  /** Register every node as a Node object and keep its Ready heartbeat going; default true. */
  registerNodes?: boolean;
  /** Default 10 s. */
  heartbeatIntervalMs?: number;
  /** More relays in every node's relay process, beside the apiserver's (a real-node box's image registry). */
  nodeRelays?: readonly RelayPair[];
}

export interface BoxDomain {
  name: string;
  gateway: string | undefined;
  lan: string;
  router: BoxRouter;
  nodes: BoxNode[];
}

export interface NodeDownOptions {
  /** Also set the Node's Ready condition, as the node lifecycle controller would after its grace period. */
  ready?: 'False' | 'Unknown';
}

/** What `Box.downFromState` needs, persisted as `<dir>/box.json`. */
interface BoxState {
  id: string;
  namespaces: string[];
  rootRelayPid?: number;
  registeredNodes: string[];
  adminKubeconfig: string;
  socket: string;
}

export class BoxOptionsError extends Error {
  override readonly name = 'BoxOptionsError';
}
export class UnknownNodeError extends Error {
  override readonly name = 'UnknownNodeError';
}
/** A Node of this box's topology is registered by another box that is still running. */
export class BoxConflictError extends Error {
  override readonly name = 'BoxConflictError';
}
export class BoxTeardownError extends AggregateError {
  override readonly name = 'BoxTeardownError';
}

/** Node annotation naming the box that registered it. */
export const BOX_ANNOTATION = 'testbed.raven.openyurt.io/box';
const ATTACHED_PREFIX = 'rvbox';
const DETACHED_PREFIX = 'rvboxk';
const STALE_NETNS = new RegExp(`^${ATTACHED_PREFIX}-(\\d+)-[0-9a-f]{4}-`);
const UNIX_PATH_MAX = 107;
const STATE_FILE = 'box.json';

const live = new Set<Box>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const destroyAll = () => {
    for (const box of live) box.destroySync();
  };
  process.once('exit', destroyAll);
  // A fatal signal skips 'exit'. When nobody else handles it, clean up and die of it as if we had not been here.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      if (process.listenerCount(signal) > 1) return;
      destroyAll();
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

/**
 * The cluster in a box: Raven's multi-domain network built from network namespaces, each domain a LAN behind a NAT
 * router on a shared internet, each node a namespace with one pod, registered as a Node in the real apiserver and
 * reaching it at https://127.0.0.1:6443. Everything lives in namespaces the box creates; nothing touches the root
 * namespace's addresses, routes or firewall.
 */
export class Box {
  readonly id: string;
  readonly dir: string;
  readonly mtu: number;
  /** Kept current by the runtime controls: a domain's `nat` and `wanIP` are what its router has now. */
  readonly topology: ResolvedTopology;
  /** The "internet host" (the internet's first address), e.g. to probe what is reachable from outside. */
  readonly internet: NetnsHost;
  readonly domains: BoxDomain[];
  readonly nodes: BoxNode[];
  /** Root-namespace end of the apiserver relay. */
  readonly apiserverSocket: string;
  /** An admin kubeconfig for use inside node namespaces (server https://127.0.0.1:6443). */
  readonly adminKubeconfig: string;
  readonly detached: boolean;
  private readonly nodeRelays: readonly RelayPair[];
  /** Heartbeat patches that failed (the last error is in `lastHeartbeatError`). */
  heartbeatFailures = 0;
  lastHeartbeatError: unknown;
  private readonly namespaces: string[];
  private readonly cluster: BoxOptions['cluster'];
  private readonly heartbeatIntervalMs: number;
  private readonly registeredNodes = new Set<string>();
  private rootRelay?: ManagedProcess;
  private kube?: KubeClient;
  private heartbeat?: NodeJS.Timeout;
  private beating?: Promise<void>;
  private closed = false;
  /** Runtime controls of one namespace run one at a time: each reads the rules it then changes. */
  private readonly controlQueues = new Map<string, Promise<unknown>>();

  private constructor(opts: BoxOptions, topology: ResolvedTopology) {
    this.detached = opts.detached ?? false;
    this.nodeRelays = opts.nodeRelays ?? [];
    this.id = `${process.pid}-${randomBytes(2).toString('hex')}`;
    const prefix = `${this.detached ? DETACHED_PREFIX : ATTACHED_PREFIX}-${this.id}`;
    this.dir = opts.dir;
    this.mtu = opts.mtu ?? 1500;
    this.topology = topology;
    this.cluster = opts.cluster;
    this.heartbeatIntervalMs = opts.heartbeatIntervalMs ?? 10_000;
    this.apiserverSocket = join(opts.dir, 'apiserver.sock');
    this.adminKubeconfig = join(opts.dir, 'kubeconfigs', 'admin.kubeconfig');
    this.internet = new NetnsHost('internet', `${prefix}-internet`, topology.internetHostIP);
    this.domains = topology.domains.map((domain) => ({
      name: domain.name,
      gateway: domain.gateway,
      lan: domain.lan.text,
      router: new BoxRouter(domain.name, `${prefix}-router-${domain.name}`, domain.routerIP, domain.wanIP),
      nodes: domain.nodes.map((node) => new BoxNode(`${prefix}-node-${node.name}`, `${prefix}-pod-${node.name}`, node, domain, this.mtu, opts.dir, this.detached)),
    }));
    this.nodes = this.domains.flatMap((domain) => domain.nodes);
    // Nodes and pods first: teardown goes in this order, and the routers outlive the nodes behind them.
    this.namespaces = [
      ...this.nodes.flatMap((node) => [node.netns, node.podNetns]),
      ...this.domains.map((domain) => domain.router.netns),
      this.internet.netns,
    ];
  }

  /** Builds the box; on any failure it tears down whatever it built and rethrows. */
  static async up(opts: BoxOptions): Promise<Box> {
    const topology = resolveTopology(opts.topology ?? walkthroughTopology());
    const mtu = opts.mtu ?? 1500;
    if (!Number.isInteger(mtu) || mtu < 576 || mtu > 9000) throw new BoxOptionsError(`mtu must be an integer in 576..9000, got ${mtu}`);
    if (Buffer.byteLength(join(opts.dir, 'apiserver.sock')) > UNIX_PATH_MAX) {
      throw new BoxOptionsError(`dir ${opts.dir} is too long for a unix socket path inside it; use a shorter one`);
    }
    await Box.removeStale();
    const box = new Box(opts, topology);
    if (!box.detached) {
      installExitHook();
      live.add(box);
    }
    try {
      await box.build(opts.registerNodes ?? true);
    } catch (error) {
      await box.down().catch(() => undefined);
      throw error;
    }
    return box;
  }

  private async build(register: boolean): Promise<void> {
    mkdirSync(join(this.dir, 'logs'), { recursive: true });
    mkdirSync(join(this.dir, 'kubeconfigs'), { recursive: true });
    if (register) {
      this.kube = await KubeClient.load({ kubeconfig: this.cluster.kubeconfig, userAgent: 'raven-box' });
      // Fail before building anything when another running box owns one of our Nodes.
      await Promise.all(this.nodes.map((node) => this.assertNodeFree(this.kube!, node.name)));
    }
    this.saveState();
    for (const name of this.namespaces) await addNetns(name);
    await Promise.all([this.buildNetwork(), this.startRootRelay()]);
    await Promise.all(this.nodes.map((node) => node.startHolder()));
    await Promise.all(this.nodes.map((node) => node.startRelay(this.apiserverSocket, this.nodeRelays)));
    this.saveState();
    this.writeInsideAdminKubeconfig();
    if (this.kube) await this.registerNodes(this.kube);
  }

  private async buildNetwork(): Promise<void> {
    const inet = netnsHandle(this.internet.netns);
    await buildInternet(inet, this.topology, this.mtu);
    await Promise.all(this.domains.map(async (domain, index) => {
      const spec = this.topology.domains[index]!;
      const router = netnsHandle(domain.router.netns);
      await buildRouter(inet, router, this.topology, spec, this.mtu);
      await Promise.all(domain.nodes.map((node, i) => buildNode(router, netnsHandle(node.netns), netnsHandle(node.podNetns), this.topology, spec, i, this.mtu)));
    }));
  }

  private async startRootRelay(): Promise<void> {
    const api = new URL(this.cluster.server);
    const host = api.hostname.replace(/^\[(.*)\]$/, '$1');
    const log = join(this.dir, 'logs', 'apiserver-relay.log');
    this.rootRelay = ManagedProcess.start({
      name: 'box/apiserver-relay',
      command: process.execPath,
      // An attached relay also exits on its own when this process dies without running its exit hook.
      args: [RELAY_SCRIPT, `unix:${this.apiserverSocket}`, `tcp:${host}:${api.port || '443'}`, ...(this.detached ? [] : [`watch-pid:${process.pid}`])],
      logFile: log,
      detached: this.detached,
    });
    await waitForLog(this.rootRelay, log, 0, 'listening on');
  }

  private writeInsideAdminKubeconfig(): void {
    const config = insideKubeconfigSchema.parse(parse(readFileSync(this.cluster.kubeconfig, 'utf8')));
    for (const cluster of config.clusters) cluster.cluster.server = INSIDE_APISERVER;
    writeFileSync(this.adminKubeconfig, stringify(config), { mode: 0o600 });
  }

  /**
   * A kubeconfig for use inside node namespaces (server https://127.0.0.1:6443) authenticating as a ServiceAccount,
   * so a process under test has exactly its Role's permissions.
   */
  kubeconfigFor(serviceAccount: string, namespace = SYSTEM_NAMESPACE): Promise<string> {
    const access = { server: INSIDE_APISERVER, kubeconfig: this.cluster.kubeconfig, caPem: this.cluster.caPem };
    return serviceAccountKubeconfig(access, namespace, serviceAccount, join(this.dir, 'kubeconfigs'));
  }

  node(name: string): BoxNode {
    const node = this.nodes.find((candidate) => candidate.name === name);
    if (!node) throw new UnknownNodeError(`no node ${name} in box ${this.id} (nodes: ${this.nodes.map((n) => n.name).join(', ')})`);
    return node;
  }

  /** A domain by its name or by a Gateway of its nodes. */
  domain(name: string): BoxDomain {
    const domain = this.domains.find((candidate) => candidate.name === name || candidate.gateway === name || candidate.nodes.some((node) => node.gateway === name));
    if (!domain) throw new UnknownNodeError(`no domain or gateway ${name} in box ${this.id}`);
    return domain;
  }

  /** Every host of the box: the internet host, the routers, the nodes and their pods. */
  hosts(): BoxHost[] {
    return [this.internet, ...this.domains.flatMap((domain) => [domain.router, ...domain.nodes.flatMap((node) => [node, node.pod])])];
  }

  ping(opts: PingOptions): Promise<PingResult> {
    return ping(opts);
  }

  connectivityMatrix(pairs: readonly ConnectivityPair[], opts?: MatrixOptions): Promise<ConnectivityRow[]> {
    return connectivityMatrix(pairs, opts);
  }

  /** Starts tcpdump on an interface inside a host (`box.capture({ at: box.domain('cloud').router, iface: 'wan0' })`). */
  capture(opts: CaptureOptions): Promise<Capture> {
    return capture(opts);
  }

  // ---- Nodes in the apiserver ----

  private async registerNodes(kube: KubeClient): Promise<void> {
    await Promise.all(this.nodes.map((node) => this.registerNode(kube, node)));
    this.saveState();
    this.heartbeat = setInterval(() => {
      this.beating ??= this.beat(kube).finally(() => {
        this.beating = undefined;
      });
    }, this.heartbeatIntervalMs);
    this.heartbeat.unref();
  }

  private async registerNode(kube: KubeClient, node: BoxNode): Promise<void> {
    const spec = this.topology.domains.flatMap((domain) => domain.nodes).find((candidate) => candidate.name === node.name)!;
    const fake: FakeNode = {
      name: node.name,
      internalIP: node.internalIP,
      podCIDRs: [node.podCIDR],
      labels: { ...(node.gateway ? { [LABELS.gateway]: node.gateway } : {}), ...spec.labels },
      annotations: { [BOX_ANNOTATION]: this.id },
    };
    try {
      await registerNode(kube, fake);
    } catch (error) {
      if (!isAlreadyExists(error)) throw error;
      // Left behind by a box that died (or registered by hand): take it over.
      await this.assertNodeFree(kube, node.name);
      await deleteNode(kube, node.name);
      await registerNode(kube, fake);
    }
    this.registeredNodes.add(node.name);
  }

  private async assertNodeFree(kube: KubeClient, name: string): Promise<void> {
    const owner = (await findNode(kube, name))?.metadata.annotations?.[BOX_ANNOTATION];
    if (owner !== undefined && owner !== this.id && ownerRunning(owner)) {
      throw new BoxConflictError(`Node ${name} belongs to box ${owner}, which is still running`);
    }
  }

  /** What a kubelet's status loop does for Ready: refresh the heartbeat time of every node that is up. */
  private async beat(kube: KubeClient): Promise<void> {
    const now = metaTime();
    await Promise.all(this.nodes.filter((node) => node.isUp && this.registeredNodes.has(node.name)).map(async (node) => {
      try {
        await kube.patch(RESOURCES.nodes, { name: node.name, subresource: 'status' }, {
          status: { conditions: [{ type: 'Ready', status: 'True', reason: 'RavenTestbed', message: 'heartbeat from the Raven test bed', lastHeartbeatTime: now }] },
        }, 'strategic');
      } catch (error) {
        this.heartbeatFailures += 1;
        this.lastHeartbeatError = error;
      }
    }));
  }

  /** The node goes down hard: all its processes (and its pod's) killed, its links down, its heartbeat stopped. */
  async nodeDown(name: string, opts: NodeDownOptions = {}): Promise<void> {
    const node = this.node(name);
    // goDown marks the node down before its first await, so waiting for the heartbeat in flight is enough.
    await Promise.all([node.goDown(), this.beating]);
    if (opts.ready && this.kube && this.registeredNodes.has(name)) await setNodeReady(this.kube, name, opts.ready);
  }

  /** Links and routes back, apiserver relay restarted, Ready=True and heartbeat resumed; restarting agents is the caller's job. */
  async nodeUp(name: string): Promise<void> {
    const node = this.node(name);
    if (node.isUp) return;
    await node.comeUp(this.apiserverSocket, this.nodeRelays);
    if (this.kube && this.registeredNodes.has(name)) await setNodeReady(this.kube, name, 'True');
  }

  // ---- Runtime controls of routers and nodes ----

  /** Switches a domain router's NAT behaviour (BoxNatMode) and flushes its conntrack table, so every flow is mapped anew. */
  async setRouterNat(domain: string, mode: BoxNatMode): Promise<void> {
    if (!BOX_NAT_MODES.includes(mode)) throw new BoxControlError(`nat ${JSON.stringify(mode)} is not one of ${BOX_NAT_MODES.join(', ')}`);
    const { router, spec } = this.router(domain);
    await this.inOrder(router.netns, async () => {
      const [swap, ...rest] = routerNatCommands(spec, { ...spec, nat: mode });
      await runBoxCommands(router.executor, [swap!]);
      // The rules are swapped: the state must say so even if the flush fails, or the next swap deletes the wrong rule.
      spec.nat = mode;
      await runBoxCommands(router.executor, rest);
    });
  }

  /** Delays everything a domain router sends to the internet by `ms` (netem on its WAN egress); 0 removes the delay. */
  async setRouterWanDelay(domain: string, ms: number): Promise<void> {
    const commands = wanDelayCommands(ms);
    const { router } = this.router(domain);
    await this.inOrder(router.netns, () => runBoxCommands(router.executor, commands));
  }

  /**
   * Drops (or stops dropping) the UDP a domain router forwards, both ways: all of it, or only from and to `peer`;
   * blocking also flushes its conntrack table.
   */
  async blockRouterUdp(domain: string, blocked: boolean, opts: { peer?: string } = {}): Promise<void> {
    const { router } = this.router(domain);
    await this.inOrder(router.netns, async () => {
      const { stdout } = await router.exec('iptables-save', ['-t', 'filter']);
      await runBoxCommands(router.executor, udpBlockCommands(blocked, stdout, opts.peer));
    });
  }

  /**
   * Moves a domain router's WAN address to another free address of the internet (as an ISP reassigning it) and
   * flushes its conntrack table. MASQUERADE follows the interface address by itself; nothing else the box rendered
   * holds the router's address (exposed nodes SNAT to their own public IPs, and `box.json` keeps only names).
   */
  async readdressRouterWan(domain: string, newWanIP: string): Promise<void> {
    const { router, spec } = this.router(domain);
    await this.inOrder(router.netns, async () => {
      if (newWanIP === spec.wanIP) return;
      assertWanAddressFree(this.topology, spec.name, newWanIP);
      await runBoxCommands(router.executor, wanReaddressCommands(spec.wanIP, newWanIP, this.topology.internet.bits));
      spec.wanIP = newWanIP;
      router.movedWan(newWanIP);
    });
  }

  /**
   * Bytes a node's namespace forwarded from prefix `src` to prefix `dst` (addresses count as /32). The first call for
   * a pair installs its counting rule in BOX-COUNT and returns 0: counting starts then.
   */
  async forwardedBytes(nodeName: string, src: string, dst: string): Promise<number> {
    const node = this.node(nodeName);
    const { exec } = netnsHandle(node.netns);
    return this.inOrder(node.netns, async () => {
      const { stdout: save } = await exec.run('iptables-save', ['-t', 'filter']);
      await runBoxCommands(exec, countSetupCommands(save, src, dst));
      const listing = countListingCommand();
      const bytes = countedBytes((await exec.run(listing.cmd, listing.args)).stdout, src, dst);
      if (bytes === undefined) throw new BoxControlError(`node ${nodeName}: no ${src} -> ${dst} counter in ${listing.args.at(-1)} after installing it`);
      return bytes;
    });
  }

  private router(name: string): { router: BoxRouter; spec: ResolvedDomain } {
    const domain = this.domain(name);
    return { router: domain.router, spec: this.topology.domains.find((candidate) => candidate.name === domain.name)! };
  }

  private inOrder<T>(netns: string, step: () => Promise<T>): Promise<T> {
    const result = (this.controlQueues.get(netns) ?? Promise.resolve()).then(step);
    this.controlQueues.set(netns, result.catch(() => undefined));
    return result;
  }

  // ---- Teardown ----

  /** Kills every process in every namespace of the box, deletes the namespaces and the Nodes; safe to call twice. */
  async down(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const errors: unknown[] = [];
    const attempt = async (step: () => Promise<unknown>) => {
      try {
        await step();
      } catch (error) {
        errors.push(error);
      }
    };
    clearInterval(this.heartbeat);
    await this.beating;
    await Promise.all([
      attempt(() => this.deregisterNodes()),
      attempt(async () => {
        const isInfrastructure = (ns: string) => ns === this.internet.netns || this.domains.some((d) => d.router.netns === ns);
        await Promise.all(this.namespaces.filter((ns) => !isInfrastructure(ns)).map((ns) => removeNetns(ns)));
        for (const ns of this.namespaces.filter(isInfrastructure)) await removeNetns(ns);
      }),
    ]);
    await attempt(async () => this.rootRelay?.kill());
    rmSync(this.apiserverSocket, { force: true });
    rmSync(join(this.dir, STATE_FILE), { force: true });
    this.kube?.close();
    live.delete(this);
    if (errors.length > 0) throw new BoxTeardownError(errors, `box ${this.id} teardown: ${errors.map(String).join('; ')}`);
  }

  private async deregisterNodes(): Promise<void> {
    if (!this.kube) return;
    await Promise.all([...this.registeredNodes].map((name) => deleteNode(this.kube!, name)));
    this.registeredNodes.clear();
  }

  /** @internal The process 'exit' safety net: synchronous, best effort, leaves the Nodes to the cluster's teardown. */
  destroySync(): void {
    if (this.rootRelay) killQuietly(this.rootRelay.pid);
    for (const ns of this.namespaces) deleteNetnsSync(ns);
    rmSync(this.apiserverSocket, { force: true });
    live.delete(this);
  }

  private saveState(): void {
    const state: BoxState = {
      id: this.id,
      namespaces: this.namespaces,
      rootRelayPid: this.rootRelay?.pid,
      registeredNodes: [...this.registeredNodes],
      adminKubeconfig: this.cluster.kubeconfig,
      socket: this.apiserverSocket,
    };
    writeFileSync(join(this.dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
  }

  /** Tears down a box found through `<dir>/box.json` (a detached box left by demo `--keep`). False if there is none. */
  static async downFromState(dir: string): Promise<boolean> {
    const file = join(dir, STATE_FILE);
    if (!existsSync(file)) return false;
    const state = JSON.parse(readFileSync(file, 'utf8')) as BoxState;
    if (state.rootRelayPid !== undefined && pidAlive(state.rootRelayPid)) killQuietly(state.rootRelayPid);
    for (const ns of state.namespaces) await removeNetns(ns);
    if (state.registeredNodes.length > 0) {
      const kube = await KubeClient.load({ kubeconfig: state.adminKubeconfig, userAgent: 'raven-box' });
      try {
        for (const name of state.registeredNodes) {
          if ((await findNode(kube, name))?.metadata.annotations?.[BOX_ANNOTATION] === state.id) await deleteNode(kube, name);
        }
      } finally {
        kube.close();
      }
    }
    rmSync(state.socket, { force: true });
    rmSync(file, { force: true });
    return true;
  }

  /** Removes the namespaces (and everything running in them) of attached boxes whose process died without cleaning up. */
  static async removeStale(): Promise<string[]> {
    const stale = (await listNetns()).filter((ns) => {
      const pid = STALE_NETNS.exec(ns)?.[1];
      return pid !== undefined && !pidAlive(Number(pid));
    });
    for (const ns of stale) await removeNetns(ns);
    return stale;
  }

  /** A printable summary: domains, routers, nodes, addresses and namespaces. */
  describe(): string {
    const rows: string[][] = [];
    for (const domain of this.domains) {
      rows.push([`${domain.name} (${domain.gateway ?? 'no gateway'})`, `LAN ${domain.lan}`, `router ${domain.router.lanIP}`, `WAN ${domain.router.wanIP}`, '', domain.router.netns]);
      for (const node of domain.nodes) {
        const gateway = node.gateway === domain.gateway ? '' : ` (${node.gateway ?? 'no gateway'})`;
        rows.push([`  ${node.name}${gateway}`, node.internalIP, node.publicIP ? `public ${node.publicIP}` : '', `pods ${node.podCIDR}`, `pod ${node.podIP}`, node.netns]);
      }
    }
    const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
    const { internet, podRange } = this.topology;
    return [
      `box ${this.id}: underlay MTU ${this.mtu}, pod range ${podRange.text}, state in ${this.dir}`,
      `internet ${internet.text}: internet host ${this.internet.ip} (${this.internet.netns})`,
      ...rows.map((row) => row.map((cell, col) => cell.padEnd(widths[col]!)).join('  ').trimEnd()),
      `inside every node: apiserver at ${INSIDE_APISERVER}, admin kubeconfig ${this.adminKubeconfig}`,
    ].join('\n');
  }
}

interface NodeObject {
  metadata: { annotations?: Record<string, string> };
}

const insideKubeconfigSchema = z.looseObject({
  clusters: z.array(z.looseObject({ name: z.string(), cluster: z.looseObject({ server: z.string() }) })).min(1),
});

async function findNode(kube: KubeClient, name: string): Promise<NodeObject | undefined> {
  try {
    return await kube.get<NodeObject>(RESOURCES.nodes, { name });
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

function ownerRunning(owner: string): boolean {
  const pid = Number(/^(\d+)-/.exec(owner)?.[1]);
  if (!Number.isInteger(pid)) return false;
  if (pid === process.pid) return [...live].some((box) => box.id === owner);
  return pidAlive(pid);
}

async function removeNetns(ns: string): Promise<void> {
  await killNetnsProcesses(ns);
  await destroyNetns(ns);
}
