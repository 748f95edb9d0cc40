import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Exec, RunOptions, RunResult } from '@raven/netlink';
import { setLinkUp } from '../netns.ts';
import { ManagedProcess, waitFor, WaitAbortedError } from '../process.ts';
import { BoxPod, WrappedExec, type BoxHost } from './hosts.ts';
import { IFACES, lanPortName, listLinks, netnsHandle, restoreNodeRoutes, setLinkDown } from './network.ts';
import { killNetnsProcesses } from './sweep.ts';
import type { ResolvedDomain, ResolvedNode } from './topology.ts';

/** Inside every node namespace the apiserver is at https://127.0.0.1:6443 (through the relay). */
export const INSIDE_APISERVER_PORT = 6443;
export const INSIDE_APISERVER = `https://127.0.0.1:${INSIDE_APISERVER_PORT}`;
/** wireguard-go keeps its UAPI sockets here; every node has its own tmpfs on it. */
export const WIREGUARD_RUN_DIR = '/run/wireguard';
export const RELAY_SCRIPT = new URL('./relay.mjs', import.meta.url).pathname;
/** A further relay of a node's: `tcp:127.0.0.1:<port>` to `unix:<path>`, for example. */
export interface RelayPair { listen: string; connect: string }

export interface NodeSpawnOptions {
  /** Names the log file, `<node.logDir>/<name>.log`. */
  name: string;
  /** Added to this process's environment and NODE_NAME (what a DaemonSet pod gets from the downward API). */
  env?: NodeJS.ProcessEnv;
  /** Run in the node's pod instead of the node itself. */
  inPod?: boolean;
  cwd?: string;
  /** Survive this process (defaults to the box's `detached`). */
  detached?: boolean;
}

export class NoNamespaceHolderError extends Error {
  override readonly name = 'NoNamespaceHolderError';
}

/**
 * A cluster node: a network namespace with `eth0` on its domain LAN (InternalIP, default route via the router) and
 * `pod0` to its pod, plus a private mount and UTS namespace kept alive by a holder process for the node's lifetime
 * (its own tmpfs on /run/wireguard; hostname = node name). Everything `exec`/`spawn` runs enters both.
 */
export class BoxNode implements BoxHost {
  readonly name: string;
  readonly domain: string;
  readonly gateway: string | undefined;
  readonly internalIP: string;
  readonly podCIDR: string;
  readonly podIP: string;
  /** The node's address on the pod veth (the pod's default gateway). */
  readonly podGatewayIP: string;
  /** The 1:1 NAT address its router gives it on the internet, if any. */
  readonly publicIP: string | undefined;
  readonly podNetns: string;
  readonly pod: BoxPod;
  /** Private, persistent state directory for agents on this node. */
  readonly stateDir: string;
  readonly logDir: string;
  readonly underlay = IFACES.nodeUnderlay;
  readonly podInterface = IFACES.nodePodVeth;
  /** Its port on the router's LAN bridge (tcpdump there sees what the node sends on its LAN). */
  readonly routerPort: string;
  readonly executor: Exec;
  private holder?: ManagedProcess;
  private up = true;

  /** @internal Built by Box.up. */
  constructor(
    readonly netns: string,
    podNetns: string,
    private readonly spec: ResolvedNode,
    private readonly domainSpec: ResolvedDomain,
    readonly mtu: number,
    dir: string,
    private readonly detached: boolean,
  ) {
    this.name = spec.name;
    this.domain = spec.domain;
    this.gateway = spec.gateway;
    this.internalIP = spec.internalIP;
    this.podCIDR = spec.podCIDR.text;
    this.podIP = spec.podIP;
    this.podGatewayIP = spec.podGatewayIP;
    this.publicIP = spec.publicIP;
    this.podNetns = podNetns;
    this.routerPort = lanPortName(domainSpec.nodes.findIndex((n) => n.name === spec.name));
    this.pod = new BoxPod(spec.name, podNetns, spec.podIP, spec.podCIDR.text);
    this.stateDir = join(dir, 'nodes', spec.name, 'state');
    this.logDir = join(dir, 'nodes', spec.name, 'logs');
    mkdirSync(this.stateDir, { recursive: true });
    mkdirSync(this.logDir, { recursive: true });
    this.executor = new WrappedExec(() => this.wrap);
  }

  get label(): string {
    return this.name;
  }

  get ip(): string {
    return this.internalIP;
  }

  /** False between `box.nodeDown` and `box.nodeUp`. */
  get isUp(): boolean {
    return this.up;
  }

  /** The process holding the node's mount and UTS namespaces (`nsenter -t <holderPid> -m -u -n`). */
  get holderPid(): number {
    if (!this.holder) throw new NoNamespaceHolderError(`node ${this.name} has no namespace holder`);
    return this.holder.pid;
  }

  get wrap(): readonly string[] {
    return ['nsenter', '-t', String(this.holderPid), '-m', '-u', '-n', '--'];
  }

  exec(cmd: string, args: string[] = [], opts?: RunOptions): Promise<RunResult> {
    return this.executor.run(cmd, args, opts);
  }

  execPod(cmd: string, args: string[] = [], opts?: RunOptions): Promise<RunResult> {
    return this.pod.exec(cmd, args, opts);
  }

  /** Starts a long-running process inside the node (or its pod); its output goes to `<logDir>/<name>.log`. */
  spawn(command: string, args: string[], opts: NodeSpawnOptions): ManagedProcess {
    if (!/^[\w.-]+$/.test(opts.name)) throw new Error(`process name must be a file name: ${JSON.stringify(opts.name)}`);
    const wrap = opts.inPod ? this.pod.wrap : this.wrap;
    return ManagedProcess.start({
      name: `${this.name}/${opts.name}`,
      command: wrap[0]!,
      args: [...wrap.slice(1), command, ...args],
      logFile: join(this.logDir, `${opts.name}.log`),
      env: { ...process.env, NODE_NAME: this.name, ...opts.env },
      cwd: opts.cwd,
      detached: opts.detached ?? this.detached,
    });
  }

  /** @internal Starts the holder of the node's private mount and UTS namespaces. */
  async startHolder(): Promise<void> {
    const script = [
      'echo "$0" > /proc/sys/kernel/hostname',
      `mkdir -p ${WIREGUARD_RUN_DIR}`,
      `mount -t tmpfs -o mode=0700,size=16m raven-box ${WIREGUARD_RUN_DIR}`,
      'exec sleep infinity',
    ].join(' && ');
    const holder = ManagedProcess.start({
      name: `${this.name}/ns-holder`,
      command: 'ip',
      args: ['netns', 'exec', this.netns, 'unshare', '-m', '-u', '--propagation', 'private', 'sh', '-c', script, this.name],
      logFile: join(this.logDir, 'ns-holder.log'),
      detached: this.detached,
    });
    this.holder = holder;
    await waitFor(`the namespace holder of ${this.name}`, async () => {
      holder.assertRunning();
      return readFileSync(`/proc/${holder.pid}/mountinfo`, 'utf8').includes(` ${WIREGUARD_RUN_DIR} `);
    }, 10_000, 20);
  }

  /** @internal Relays the node's 127.0.0.1:6443 to the root namespace's apiserver socket. */
  async startRelay(socket: string, extra: readonly RelayPair[] = []): Promise<ManagedProcess> {
    const log = join(this.logDir, 'apiserver-relay.log');
    const offset = fileSize(log);
    const pairs = extra.flatMap((p) => [p.listen, p.connect]);
    const relay = this.spawn(process.execPath, [RELAY_SCRIPT, `tcp:127.0.0.1:${INSIDE_APISERVER_PORT}`, `unix:${socket}`, ...pairs], { name: 'apiserver-relay' });
    await waitForLog(relay, log, offset, 'listening on');
    return relay;
  }

  /** @internal Kills everything in the node and its pod (except the holder), empties /run/wireguard, sets links down. */
  async goDown(): Promise<void> {
    this.up = false;
    await killNetnsProcesses(this.netns, new Set([this.holderPid]));
    await killNetnsProcesses(this.podNetns);
    // A rebooted node starts with an empty /run.
    await this.exec('find', [WIREGUARD_RUN_DIR, '-mindepth', '1', '-delete']);
    const ns = netnsHandle(this.netns);
    for (const link of await listLinks(ns)) await setLinkDown(ns, link);
  }

  /** @internal Brings the box's links back with their routes and restarts the apiserver relay. */
  async comeUp(socket: string, extra: readonly RelayPair[] = []): Promise<void> {
    const ns = netnsHandle(this.netns);
    await setLinkUp(ns, IFACES.nodeUnderlay);
    await setLinkUp(ns, IFACES.nodePodVeth);
    await restoreNodeRoutes(ns, this.domainSpec, this.spec);
    await this.startRelay(socket, extra);
    this.up = true;
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Waits until `text` appears in the log after `offset` (the process announces readiness there). */
export async function waitForLog(proc: ManagedProcess, log: string, offset: number, text: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(`${proc.name}: "${text}" in its log`, async () => {
    let content = '';
    try {
      content = readFileSync(log, 'utf8').slice(offset);
    } catch {
      // Not written yet.
    }
    if (content.includes(text)) return true;
    if (!proc.running) throw new WaitAbortedError(`${proc.name} exited: ${content.slice(-2_000)}`);
    return false;
  }, timeoutMs, 20);
}
