import { existsSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { CommandError, type Exec } from '@raven/netlink';
import type { Logger } from '@raven/controller-kit';
import type { VpnPlan } from '../planner.ts';
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
    const lines = ['[Interface]', `PrivateKey = ${this.keys.privateKey}`, `ListenPort = ${plan.listenPort}`];
    for (const peer of plan.peers) {
      if (!peer.publicKey) continue; // not published yet: the peer's agent has not started
      lines.push('', '[Peer]', `PublicKey = ${peer.publicKey}`);
      if (plan.presharedKey) lines.push(`PresharedKey = ${plan.presharedKey}`);
      if (peer.endpoint) lines.push(`Endpoint = ${peer.endpoint}`);
      if (peer.allowedIPs.length > 0) lines.push(`AllowedIPs = ${peer.allowedIPs.join(', ')}`);
      if (peer.keepaliveSeconds) lines.push(`PersistentKeepalive = ${peer.keepaliveSeconds}`);
    }
    return `${lines.join('\n')}\n`;
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

  async status(): Promise<PeerStatus[]> {
    if (!(await this.deviceExists())) return [];
    const { stdout } = await this.opts.exec.run('wg', ['show', this.opts.device, 'dump']);
    return parseDump(stdout);
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

/** `wg show <dev> dump`: the interface line, then one tab-separated line per peer. */
export function parseDump(text: string): PeerStatus[] {
  return text
    .trim()
    .split('\n')
    .slice(1)
    .filter(Boolean)
    .map((line) => {
      const [publicKey, , endpoint, , handshake, rx, tx] = line.split('\t');
      const seconds = Number(handshake ?? 0);
      return {
        id: publicKey ?? '',
        endpoint: endpoint && endpoint !== '(none)' ? endpoint : undefined,
        latestHandshake: seconds > 0 ? new Date(seconds * 1000) : undefined,
        rxBytes: Number(rx ?? 0),
        txBytes: Number(tx ?? 0),
      };
    });
}
