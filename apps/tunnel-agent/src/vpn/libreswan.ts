import { createHash, createHmac } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDnsSubdomain } from '@raven/api-types';
import { CommandError, type Exec } from '@raven/netlink';
import type { Logger } from '@raven/controller-kit';
import type { PeerPlan, VpnPlan } from '../planner.ts';
import { VpnDriverError, type PeerStatus, type VpnDriver } from './driver.ts';

export interface LibreswanOptions {
  exec: Exec;
  log: Logger;
  stateDir: string;
  /** The PSK Secret's value. Required: unlike upstream there is no built-in default key. */
  psk: () => string | undefined;
}

/** One IPsec connection (a local subnet to a remote subnet through one peer gateway), as whack arguments. */
export interface IpsecConnection {
  name: string;
  peer: string;
  peerNode: string;
  args: string[];
  initiate: boolean;
}

export const CONNECTION_PREFIX = 'raven-';
const id = (gateway: string) => `@${gateway}`;

/**
 * The connections a plan needs: every local subnet to every subnet behind each peer, named after the peer and a hash
 * of the definition, so a changed definition is a new name (the old one is deleted) and names identify ours.
 * We initiate towards peers with a known public address; NATed peers initiate towards us.
 */
export function plannedConnections(plan: VpnPlan, localGateway: string): IpsecConnection[] {
  const conns: IpsecConnection[] = [];
  const local = plan.localSubnets.filter((s) => !s.includes(':'));
  for (const peer of plan.peers) {
    const remoteHost = peer.publicIP && !peer.underNAT ? peer.publicIP : '%any';
    for (const leftSubnet of local) {
      for (const rightSubnet of peer.allowedIPs.filter((s) => !s.includes(':'))) {
        const args = [
          '--ikev2', '--psk', '--encrypt', '--tunnel', '--pfs',
          '--host', plan.localPrivateIP, '--id', id(localGateway), '--client', leftSubnet,
          '--to', '--host', remoteHost, '--id', id(peer.gateway), '--client', rightSubnet,
        ];
        const digest = createHash('sha256').update(args.join(' ')).digest('hex').slice(0, 10);
        conns.push({ name: `${CONNECTION_PREFIX}${peer.gateway}-${digest}`, peer: peer.gateway, peerNode: peer.nodeName, args, initiate: remoteHost !== '%any' });
      }
    }
  }
  return conns;
}

/**
 * The PSK of one pair of gateways: an HMAC of their two names (in either order) under the Secret's value. Each line
 * of a gateway's secrets file then authenticates exactly one pair, so a key read from one gateway's file does not let
 * it pose as any other gateway towards a third. (The Secret itself still derives every pair's key: whoever reads it is
 * trusted like the control plane.)
 */
export function pairPsk(secret: string, a: string, b: string): string {
  const [first, second] = [a, b].sort();
  return createHmac('sha256', secret).update(`raven-ipsec-psk\0${first}\0${second}`).digest('base64');
}

/** One line per peer: the pair's two IKE identities (pinned, no wildcard) and that pair's PSK. */
export function secretsFile(localGateway: string, peers: readonly PeerPlan[], secret: string): string {
  for (const name of [localGateway, ...peers.map((p) => p.gateway)]) {
    if (!isDnsSubdomain(name)) throw new VpnDriverError(`refusing to write IPsec secrets: "${name}" is not a valid Gateway name`);
  }
  return peers.map((p) => `${id(localGateway)} ${id(p.gateway)} : PSK "${pairPsk(secret, localGateway, p.gateway)}"`).join('\n') + '\n';
}

/** Names of the connections pluto knows, from `whack --status` (lines `000 "name": ...`). */
export function parseConnectionNames(status: string): Set<string> {
  const names = new Set<string>();
  for (const m of status.matchAll(/^\d{3} "([^"]+)":/gm)) names.add(m[1]!);
  return names;
}

export interface ChildSaTraffic {
  connection: string;
  /** The remote address of an instance of a `%any` connection (`"name"[1] 192.0.2.7`). */
  remote?: string;
  inBytes: number;
  outBytes: number;
}

/**
 * `whack --trafficstatus`: one line per Child SA, `#2: "name", type=ESP, add_time=…, inBytes=…, outBytes=…, id='@gw'`,
 * prefixed with `006 ` before libreswan 5; an instance of a `%any` connection reads `"name"[1] 192.0.2.7,`.
 */
export function parseTrafficStatus(text: string): ChildSaTraffic[] {
  const line = /^(?:\d{3} )?#\d+: "([^"]+)"(?:\[\d+\] (?:\.\.\.)?([^,\s]+))?[^,\n]*,[^\n]*?\binBytes=(\d+), outBytes=(\d+)/gm;
  return [...text.matchAll(line)].map((m) => ({ connection: m[1]!, ...(m[2] ? { remote: m[2] } : {}), inBytes: Number(m[3]), outBytes: Number(m[4]) }));
}

/**
 * The Child SAs joined to the plan's peers through the connections planned for them: a peer's traffic is the sum
 * over its connections (one per pair of subnets) and their SAs (old and new ones overlap during a rekey).
 */
export function libreswanPeerStatus(connections: readonly IpsecConnection[], trafficStatus: string): PeerStatus[] {
  const peerOf = new Map(connections.map((c) => [c.name, c]));
  const byPeer = new Map<string, PeerStatus>();
  for (const sa of parseTrafficStatus(trafficStatus)) {
    const conn = peerOf.get(sa.connection);
    if (!conn) continue;
    const key = `${conn.peer}/${conn.peerNode}`;
    const status = byPeer.get(key) ?? { gateway: conn.peer, nodeName: conn.peerNode, rxBytes: 0, txBytes: 0 };
    status.rxBytes += sa.inBytes;
    status.txBytes += sa.outBytes;
    if (sa.remote) status.endpoint = sa.remote;
    byPeer.set(key, status);
  }
  return [...byPeer.values()];
}

/**
 * libreswan through pluto/whack. Our pluto runs with its own rundir, NSS database and secrets file under the state
 * directory, and the driver only ever adds or deletes connections named `raven-*`: never a global xfrm flush.
 * A running pluto is adopted on restart, so established SAs survive an agent restart.
 */
export class LibreswanDriver implements VpnDriver {
  readonly name = 'libreswan' as const;
  private readonly dir: string;
  /** The probe asks for the status of the plan last applied: its connections are computed once. */
  private readonly planned = new WeakMap<VpnPlan, IpsecConnection[]>();

  constructor(private readonly opts: LibreswanOptions) {
    this.dir = join(opts.stateDir, 'ipsec');
  }

  private get rundir(): string {
    return join(this.dir, 'run');
  }

  private whack(args: string[]) {
    return this.opts.exec.run('ipsec', ['whack', '--rundir', this.rundir, ...args]);
  }

  async init(): Promise<Record<string, never>> {
    await this.opts.exec.run('ipsec', ['--version']).catch(() => {
      throw new VpnDriverError('libreswan is not installed (the ipsec command is missing)');
    });
    mkdirSync(this.rundir, { recursive: true, mode: 0o700 });
    if (!existsSync(join(this.dir, 'nss', 'cert9.db'))) {
      mkdirSync(join(this.dir, 'nss'), { recursive: true, mode: 0o700 });
      await this.opts.exec.run('ipsec', ['initnss', '--nssdir', join(this.dir, 'nss')]);
    }
    return {};
  }

  /** Starts our pluto unless one is already answering on our control socket (adopted after a restart). */
  private async ensurePluto(): Promise<void> {
    if (existsSync(join(this.rundir, 'pluto.ctl'))) {
      try {
        await this.whack(['--listen']);
        return;
      } catch (err) {
        if (!(err instanceof CommandError)) throw err;
      }
    }
    const conf = join(this.dir, 'ipsec.conf');
    if (!existsSync(conf)) writeFileSync(conf, 'config setup\n', { mode: 0o600 });
    await this.opts.exec.run('/usr/libexec/ipsec/pluto', [
      '--config', conf, '--rundir', this.rundir, '--nssdir', join(this.dir, 'nss'), '--ipsecdir', this.dir,
      '--secretsfile', join(this.dir, 'ipsec.secrets'), '--logfile', join(this.dir, 'pluto.log'), '--use-xfrm',
    ]);
    this.opts.log.info({ rundir: this.rundir }, 'pluto started');
  }

  private async connectionNames(): Promise<Set<string>> {
    const { stdout } = await this.whack(['--status']);
    return new Set([...parseConnectionNames(stdout)].filter((n) => n.startsWith(CONNECTION_PREFIX)));
  }

  async apply(plan: VpnPlan | undefined): Promise<{ changed: boolean }> {
    if (!plan) {
      if (!existsSync(join(this.rundir, 'pluto.ctl'))) return { changed: false };
      await this.cleanup();
      return { changed: true };
    }
    const psk = this.opts.psk();
    if (!psk) throw new VpnDriverError('the libreswan driver requires the PSK Secret kube-system/raven-agent-secret (key vpn-connection-psk); refusing to use a default');
    await this.ensurePluto();
    const secrets = join(this.dir, 'ipsec.secrets');
    const wantedSecrets = secretsFile(plan.gateway, plan.peers, psk);
    let changed = false;
    if (!existsSync(secrets) || readFileSync(secrets, 'utf8') !== wantedSecrets) {
      writeFileSync(`${secrets}.tmp`, wantedSecrets, { mode: 0o600 });
      renameSync(`${secrets}.tmp`, secrets);
      await this.whack(['--rereadsecrets']);
      changed = true;
    }
    const wanted = this.connectionsOf(plan);
    const have = await this.connectionNames();
    for (const name of have) {
      if (wanted.some((c) => c.name === name)) continue;
      await this.whack(['--delete', '--name', name]);
      changed = true;
    }
    for (const conn of wanted) {
      if (have.has(conn.name)) continue;
      await this.whack(['--name', conn.name, ...conn.args]);
      if (conn.initiate) await this.whack(['--initiate', '--asynchronous', '--name', conn.name]);
      changed = true;
    }
    return { changed };
  }

  private connectionsOf(plan: VpnPlan): IpsecConnection[] {
    let conns = this.planned.get(plan);
    if (!conns) this.planned.set(plan, (conns = plannedConnections(plan, plan.gateway)));
    return conns;
  }

  unconfigured(peer: PeerPlan): string | undefined {
    return peer.allowedIPs.some((s) => !s.includes(':')) ? undefined : 'the peer has no IPv4 subnet, and IPsec connects IPv4 subnets only';
  }

  async status(plan: VpnPlan): Promise<PeerStatus[]> {
    if (!existsSync(join(this.rundir, 'pluto.ctl'))) return [];
    const { stdout } = await this.whack(['--trafficstatus']);
    return libreswanPeerStatus(this.connectionsOf(plan), stdout);
  }

  /** Deletes our connections (pluto removes their SAs) and stops our pluto; nothing else on the node is touched. */
  async cleanup(): Promise<void> {
    if (!existsSync(join(this.rundir, 'pluto.ctl'))) return;
    try {
      for (const name of await this.connectionNames()) await this.whack(['--delete', '--name', name]);
      await this.whack(['--shutdown']);
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
      this.opts.log.warn({ err }, 'pluto was not answering during cleanup');
    }
  }
}
