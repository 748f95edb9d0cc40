import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { CommandError, hostExec, NetnsExec, type Exec } from '@raven/netlink';
import { pidAlive } from './process.ts';

/**
 * Throw-away network namespaces for tests. Every namespace gets a unique name `<prefix>-<pid>-<hex>`, is deleted by
 * `destroy()` (call it from afterEach/finally), and as a safety net on process exit. Links are created directly inside
 * namespaces (`ip -n`), never in the caller's namespace.
 */
export interface Netns {
  readonly name: string;
  /** Runs commands inside the namespace (`ip netns exec <name> ...`). */
  readonly exec: Exec;
  /** Runs a command inside the namespace and returns its stdout. */
  run(cmd: string, ...args: string[]): Promise<string>;
  /** Kills processes left in the namespace and deletes it; safe to call twice. */
  destroy(): Promise<void>;
}

const MAX_IFNAME = 15;
const live = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', destroyAllNetnsSync);
}

/** Synchronously deletes every namespace this process created and has not destroyed yet. */
export function destroyAllNetnsSync(): void {
  for (const name of [...live]) {
    try {
      for (const pid of execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).split('\n')) {
        if (/^\d+$/.test(pid)) killQuietly(Number(pid));
      }
      execFileSync('ip', ['netns', 'delete', name], { stdio: 'ignore' });
    } catch {
      // Already gone, or not ours to fix at exit time.
    }
    live.delete(name);
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Exited meanwhile.
  }
}

export function netnsName(prefix: string): string {
  if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(prefix)) throw new Error(`invalid netns prefix: ${JSON.stringify(prefix)}`);
  return `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** Creates a namespace with loopback up. */
export async function createNetns(prefix = 'rvt'): Promise<Netns> {
  installExitHook();
  const name = netnsName(prefix);
  await hostExec.run('ip', ['netns', 'add', name]);
  live.add(name);
  const exec = new NetnsExec(name);
  const netns: Netns = {
    name,
    exec,
    run: async (cmd, ...args) => (await exec.run(cmd, args)).stdout,
    destroy: () => destroyNetns(name),
  };
  try {
    await ip(netns, 'link', 'set', 'lo', 'up');
  } catch (error) {
    await netns.destroy();
    throw error;
  }
  return netns;
}

export async function destroyNetns(name: string): Promise<void> {
  try {
    const { stdout } = await hostExec.run('ip', ['netns', 'pids', name]);
    for (const pid of stdout.split('\n')) if (/^\d+$/.test(pid)) killQuietly(Number(pid));
    await hostExec.run('ip', ['netns', 'delete', name]);
  } catch (error) {
    if (!(error instanceof CommandError && /No such file|Cannot open|not found/i.test(error.stderr))) throw error;
  } finally {
    live.delete(name);
  }
}

/** Runs `fn` with fresh namespaces (one per prefix) and always destroys them. */
export async function withNetns<T>(prefixes: readonly string[], fn: (namespaces: Netns[]) => Promise<T>): Promise<T> {
  const created: Netns[] = [];
  try {
    for (const prefix of prefixes) created.push(await createNetns(prefix));
    return await fn(created);
  } finally {
    for (const ns of created.reverse()) await ns.destroy();
  }
}

export async function listNetns(): Promise<string[]> {
  const { stdout } = await hostExec.run('ip', ['netns', 'list']);
  return stdout.split('\n').flatMap((line) => (line.trim() === '' ? [] : [line.split(' ')[0] ?? '']));
}

/** Deletes namespaces named `<prefix>-<pid>-<hex>` whose creating process is gone (e.g. after a SIGKILLed run). */
export async function removeStaleNetns(prefix: string): Promise<string[]> {
  const pattern = new RegExp(`^${prefix.replace(/[^a-z0-9-]/g, '')}-(\\d+)-[0-9a-f]{6}$`);
  const stale = (await listNetns()).filter((name) => {
    const pid = pattern.exec(name)?.[1];
    return pid !== undefined && !pidAlive(Number(pid));
  });
  for (const name of stale) await destroyNetns(name);
  return stale;
}

function ip(ns: Netns, ...args: string[]): Promise<unknown> {
  return hostExec.run('ip', ['-n', ns.name, ...args]);
}

export function assertIfName(name: string): void {
  if (name.length === 0 || name.length > MAX_IFNAME || /[\s/:]/.test(name)) {
    throw new Error(`invalid interface name (1-${MAX_IFNAME} chars, no spaces, '/' or ':'): ${JSON.stringify(name)}`);
  }
}

export interface LinkOptions {
  /** Interface addresses (`198.18.0.1/24`). */
  addresses?: readonly string[];
  mtu?: number;
  /** Defaults to true. */
  up?: boolean;
}

export interface VethEnd extends LinkOptions {
  ns: Netns;
  name: string;
}

/** A veth pair with one end in each namespace (or both in one). */
export async function createVethPair(a: VethEnd, b: VethEnd): Promise<void> {
  assertIfName(a.name);
  assertIfName(b.name);
  const peerNs = a.ns.name === b.ns.name ? [] : ['netns', b.ns.name];
  await ip(a.ns, 'link', 'add', a.name, 'type', 'veth', 'peer', 'name', b.name, ...peerNs);
  await configureLink(a.ns, a.name, a);
  await configureLink(b.ns, b.name, b);
}

export interface BridgeOptions extends LinkOptions {
  /** Existing interfaces in the same namespace to enslave. */
  ports?: readonly string[];
}

export async function createBridge(ns: Netns, name: string, options: BridgeOptions = {}): Promise<void> {
  assertIfName(name);
  await ip(ns, 'link', 'add', name, 'type', 'bridge');
  for (const port of options.ports ?? []) await ip(ns, 'link', 'set', port, 'master', name);
  await configureLink(ns, name, options);
}

export async function addAddress(ns: Netns, dev: string, address: string): Promise<void> {
  await ip(ns, 'address', 'add', address, 'dev', dev, ...(address.includes(':') ? ['nodad'] : []));
}

export async function setLinkUp(ns: Netns, dev: string): Promise<void> {
  await ip(ns, 'link', 'set', dev, 'up');
}

async function configureLink(ns: Netns, name: string, options: LinkOptions): Promise<void> {
  if (options.mtu !== undefined) await ip(ns, 'link', 'set', name, 'mtu', String(options.mtu));
  for (const address of options.addresses ?? []) await addAddress(ns, name, address);
  if (options.up ?? true) await setLinkUp(ns, name);
}
