import { existsSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { isValidPort, parseCidr, parseEndpoint, parseWireguardKey } from '@raven/api-types';
import { CommandError, type Exec } from '@raven/netlink';
import type { Logger } from '@raven/controller-kit';
import type { PeerPlan, VpnPlan } from '../planner.ts';
import { VpnDriverError, type PeerStatus, type VpnDriver } from './driver.ts';
import { loadOrCreateKeys, type WireguardKeys } from './keys.ts';

export interface WireguardOptions {
  exec: Exec;
  log: Logger;
  stateDir: string;
  device: string;
  /** `auto`: kernel WireGuard when the module is there, else wireguard-go; `kernel`/`userspace` force one. */
  implementation: 'auto' | 'kernel' | 'userspace';
  /** The userspace daemon to run when the kernel has no WireGuard: a path, or a name on PATH. */
  wireguardGo?: string;
}

/**
 * WireGuard through the `wg` tool (keys in files, never on command lines), so the same code drives kernel
 * WireGuard and wireguard-go. Configuration goes through `wg syncconf`, which changes only what differs:
 * established sessions and roaming endpoints survive every apply, and an agent restart changes nothing.
 */
export class WireguardDriver implements VpnDriver {
  readonly name = 'wireguard' as const;
  private keys?: WireguardKeys;
  private lastConfig?: string;

  constructor(private readonly opts: WireguardOptions) {}

  async init(): Promise<{ publicKey: string }> {
    this.keys = loadOrCreateKeys(this.opts.stateDir);
    return { publicKey: this.keys.publicKey };
  }

  private async deviceExists(): Promise<boolean> {
    try {
      await this.opts.exec.run('ip', ['link', 'show', 'dev', this.opts.device]);
      return true;
    } catch (err) {
      if (err instanceof CommandError) return false;
      throw err;
    }
  }

  private async createDevice(): Promise<void> {
    const { exec, device, implementation, log } = this.opts;
    if (implementation !== 'userspace') {
      try {
        await exec.run('ip', ['link', 'add', 'dev', device, 'type', 'wireguard']);
        log.info({ device, implementation: 'kernel' }, 'created WireGuard device');
        return;
      } catch (err) {
        if (implementation === 'kernel') throw new VpnDriverError(`kernel WireGuard unavailable: ${(err as Error).message}`);
      }
    }
    // wireguard-go daemonises: it outlives this process, so an agent restart finds the device and keeps it.
    const wireguardGo = this.opts.wireguardGo ?? 'wireguard-go';
    await exec.run(wireguardGo, [device]);
    if (!(await this.deviceExists())) throw new VpnDriverError(`${wireguardGo} did not create ${device}`);
    log.info({ device, implementation: 'wireguard-go', binary: wireguardGo }, 'created WireGuard device');
  }

  renderConfig(plan: VpnPlan): string {
    if (!this.keys) throw new VpnDriverError('init() first');
    return renderWireguardConfig(this.keys.privateKey, plan);
  }

  async apply(plan: VpnPlan | undefined): Promise<{ changed: boolean }> {
    if (!plan) {
      if (!(await this.deviceExists())) return { changed: false };
      await this.removeDevice();
      return { changed: true };
    }
    let created = false;
    if (!(await this.deviceExists())) {
      await this.createDevice();
      created = true;
    }
    const config = this.renderConfig(plan);
    if (!created && config === this.lastConfig) return { changed: false };
    // After a restart (nothing remembered yet) the running device usually already matches: adopt it untouched.
    if (!created && this.lastConfig === undefined && (await this.runningMatches(config))) {
      this.lastConfig = config;
      return { changed: false };
    }
    const file = join(this.opts.stateDir, `${this.opts.device}.conf`);
    writeFileSync(`${file}.tmp`, config, { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
    await this.opts.exec.run('wg', ['syncconf', this.opts.device, file]);
    this.lastConfig = config;
    return { changed: true };
  }

  /** Every line we would set is already there, with the same number of peers (learned endpoints may be extra). */
  private async runningMatches(config: string): Promise<boolean> {
    const { stdout } = await this.opts.exec.run('wg', ['showconf', this.opts.device]);
    const lines = (text: string) => text.split('\n').map((l) => l.trim().replace(/\s*=\s*/, ' = ')).filter((l) => l && !l.startsWith('#'));
    const running = lines(stdout);
    const wanted = lines(config);
    const peers = (ls: string[]) => ls.filter((l) => l === '[Peer]').length;
    const allowed = (ls: string[]) => ls.filter((l) => l.startsWith('AllowedIPs')).map((l) => l.split(' = ')[1]!.split(', ').sort().join(', '));
    const rest = (ls: string[]) => ls.filter((l) => !l.startsWith('AllowedIPs'));
    const runningRest = new Set(rest(running));
    return peers(running) === peers(wanted) && rest(wanted).every((l) => runningRest.has(l)) && allowed(wanted).every((a) => allowed(running).includes(a));
  }

  unconfigured(peer: PeerPlan): string | undefined {
    return peer.publicKey ? undefined : 'the peer has not published its public key';
  }

  async status(plan: VpnPlan): Promise<PeerStatus[]> {
    if (!(await this.deviceExists())) return [];
    const { stdout } = await this.opts.exec.run('wg', ['show', this.opts.device, 'dump']);
    return wireguardPeerStatus(plan, stdout);
  }

  private async removeDevice(): Promise<void> {
    await this.opts.exec.run('ip', ['link', 'del', 'dev', this.opts.device]);
    this.lastConfig = undefined;
    this.opts.log.info({ device: this.opts.device }, 'removed WireGuard device');
  }

  async cleanup(): Promise<void> {
    if (await this.deviceExists()) await this.removeDevice();
    const socket = `/run/wireguard/${this.opts.device}.sock`;
    if (existsSync(socket)) this.opts.log.debug({ socket }, 'wireguard-go socket left behind; it goes with its process');
  }
}

const positiveInt = (n: number, max: number) => Number.isInteger(n) && n >= 1 && n <= max;

/**
 * The `wg syncconf` file. Every value is re-checked against its type right here, the last step before text: a value
 * that is not a key, CIDR, endpoint or number never becomes a line (it throws), so no field can carry a newline or
 * a second directive into the config.
 */
export function renderWireguardConfig(privateKey: string, plan: VpnPlan): string {
  const bad = (what: string, value: unknown) => new VpnDriverError(`refusing to render WireGuard config: ${what} ${JSON.stringify(value)} is invalid`);
  if (!parseWireguardKey(privateKey)) throw bad('the private key', '<redacted>');
  if (!isValidPort(plan.listenPort)) throw bad('ListenPort', plan.listenPort);
  if (plan.presharedKey !== undefined && !parseWireguardKey(plan.presharedKey)) throw bad('the preshared key', '<redacted>');
  const lines = ['[Interface]', `PrivateKey = ${privateKey}`, `ListenPort = ${plan.listenPort}`];
  for (const peer of plan.peers) {
    if (!peer.publicKey) continue; // not published yet: the peer's agent has not started
    if (!parseWireguardKey(peer.publicKey)) throw bad(`the public key of ${peer.gateway}/${peer.nodeName}`, peer.publicKey);
    lines.push('', '[Peer]', `PublicKey = ${peer.publicKey}`);
    if (plan.presharedKey) lines.push(`PresharedKey = ${plan.presharedKey}`);
    if (peer.endpoint !== undefined) {
      if (!parseEndpoint(peer.endpoint)) throw bad(`the endpoint of ${peer.gateway}/${peer.nodeName}`, peer.endpoint);
      lines.push(`Endpoint = ${peer.endpoint}`);
    }
    const badCidr = peer.allowedIPs.find((c) => !parseCidr(c));
    if (badCidr !== undefined) throw bad(`an allowed IP of ${peer.gateway}/${peer.nodeName}`, badCidr);
    if (peer.allowedIPs.length > 0) lines.push(`AllowedIPs = ${peer.allowedIPs.join(', ')}`);
    if (peer.keepaliveSeconds) {
      if (!positiveInt(peer.keepaliveSeconds, 65535)) throw bad('PersistentKeepalive', peer.keepaliveSeconds);
      lines.push(`PersistentKeepalive = ${peer.keepaliveSeconds}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export interface DumpPeer {
  publicKey: string;
  endpoint?: string;
  latestHandshake?: Date;
  rxBytes: number;
  txBytes: number;
}

/** `wg show <dev> dump`: the interface line, then one tab-separated line per peer. */
export function parseDump(text: string): DumpPeer[] {
  return text
    .trim()
    .split('\n')
    .slice(1)
    .filter(Boolean)
    .map((line) => {
      const [publicKey, , endpoint, , handshake, rx, tx] = line.split('\t');
      const seconds = Number(handshake ?? 0);
      return {
        publicKey: publicKey ?? '',
        endpoint: endpoint && endpoint !== '(none)' ? endpoint : undefined,
        latestHandshake: seconds > 0 ? new Date(seconds * 1000) : undefined,
        rxBytes: Number(rx ?? 0),
        txBytes: Number(tx ?? 0),
      };
    });
}

/** The device's peers (from a dump) joined to the plan's by public key: WireGuard knows peers only by their key. */
export function wireguardPeerStatus(plan: VpnPlan, dump: string): PeerStatus[] {
  const byKey = new Map(parseDump(dump).map((p) => [p.publicKey, p]));
  return plan.peers.flatMap(({ gateway, nodeName, publicKey }) => {
    const p = publicKey ? byKey.get(publicKey) : undefined;
    return p ? [{ gateway, nodeName, endpoint: p.endpoint, latestHandshake: p.latestHandshake, rxBytes: p.rxBytes, txBytes: p.txBytes }] : [];
  });
}
