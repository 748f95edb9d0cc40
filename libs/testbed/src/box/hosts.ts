import { hostExec, NetnsExec, type Exec, type RunOptions, type RunResult } from '@raven/netlink';

/** Anything in the box that can run commands and be pinged: a node, a pod, a router, the internet host. */
export interface BoxHost {
  /** Node name, `<node>/pod`, `router/<domain>` or `internet`. */
  readonly label: string;
  readonly netns: string;
  /** The address other hosts reach it at (a router: its internet address). */
  readonly ip: string;
  /** Command prefix that runs a program inside this host: spawn `[...wrap, cmd, ...args]`. */
  readonly wrap: readonly string[];
  /** The same as an Exec, for the netlink reconcilers. */
  readonly executor: Exec;
  /** Runs a command inside the host; rejects with CommandError on a non-zero exit. */
  exec(cmd: string, args?: string[], opts?: RunOptions): Promise<RunResult>;
}

/** Runs commands behind a prefix that is read at call time. */
export class WrappedExec implements Exec {
  constructor(private readonly wrap: () => readonly string[]) {}

  run(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult> {
    const [program, ...prefix] = this.wrap();
    return hostExec.run(program!, [...prefix, cmd, ...args], opts);
  }
}

/** A host that is just a network namespace, entered with `ip netns exec`. */
export class NetnsHost implements BoxHost {
  readonly wrap: readonly string[];
  readonly executor: Exec;

  constructor(readonly label: string, readonly netns: string, protected address: string) {
    this.wrap = ['ip', 'netns', 'exec', netns];
    this.executor = new NetnsExec(netns);
  }

  get ip(): string {
    return this.address;
  }

  exec(cmd: string, args: string[] = [], opts?: RunOptions): Promise<RunResult> {
    return this.executor.run(cmd, args, opts);
  }
}

/** A domain's NAT router: `lan0` (bridge, the LAN gateway address) and `wan0` (on the internet). */
export class BoxRouter extends NetnsHost {
  constructor(readonly domain: string, netns: string, readonly lanIP: string, wanIP: string) {
    super(`router/${domain}`, netns, wanIP);
  }

  /** Its internet address (moved by `box.readdressRouterWan`). */
  get wanIP(): string {
    return this.address;
  }

  /** @internal */
  movedWan(wanIP: string): void {
    this.address = wanIP;
  }
}

/** A node's one pod: `eth0` with the pod CIDR's second address, default route via the node. */
export class BoxPod extends NetnsHost {
  constructor(readonly node: string, netns: string, ip: string, readonly podCIDR: string) {
    super(`${node}/pod`, netns, ip);
  }
}
