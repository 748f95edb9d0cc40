import { randomBytes } from 'node:crypto';
import { mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseWireguardKey, type Cidr } from '@raven/api-types';
import { createLogger } from '@raven/controller-kit';
import { binaryPath, createNetns, createVethPair, waitFor, type Netns } from '@raven/testbed';
import type { VpnPlan } from '../src/planner.ts';
import { WireguardDriver } from '../src/vpn/wireguard.ts';

// The pinned wireguard-go (built from its Go module) driven by the agent's WireGuard driver between two namespaces:
// "edge" dials "cloud", which learns the edge's endpoint from its packets, as a NATed gateway and the cloud do.
const log = createLogger('test', { level: 'silent' });
const wireguardGo = binaryPath('wireguard-go');
// UAPI sockets live in the host's /run/wireguard whatever the namespace: unique device names keep them apart.
const suffix = randomBytes(3).toString('hex');
const devices = { edge: `rvwge${suffix}`, cloud: `rvwgc${suffix}` };
const TUNNEL = { edge: '10.203.0.1', cloud: '10.203.0.2' };
let edge: Netns;
let cloud: Netns;
const dirs: string[] = [];
const drivers: Record<'edge' | 'cloud', WireguardDriver[]> = { edge: [], cloud: [] };
const publicKeys: Partial<Record<'edge' | 'cloud', string>> = {};

function newDriver(side: 'edge' | 'cloud', stateDir: string): WireguardDriver {
  const driver = new WireguardDriver({ exec: nsOf(side).exec, log, stateDir, device: devices[side], implementation: 'userspace', wireguardGo });
  drivers[side].push(driver);
  return driver;
}

function planFor(side: 'edge' | 'cloud'): VpnPlan {
  const base = { gateway: `gw-${side}`, device: devices[side], listenPort: 4500, mtu: 1420, presharedKey: parseWireguardKey(Buffer.alloc(32, 7).toString('base64')), localSubnets: [] };
  if (side === 'edge') {
    return {
      ...base, underNAT: true, localPrivateIP: '198.18.97.1',
      peers: [{ gateway: 'gw-cloud', nodeName: 'cloud', publicKey: parseWireguardKey(publicKeys.cloud), endpoint: '198.18.97.2:4500', allowedIPs: [`${TUNNEL.cloud}/32` as Cidr], keepaliveSeconds: 1, relays: [], underNAT: false }],
    };
  }
  return {
    ...base, underNAT: false, localPrivateIP: '198.18.97.2', localPublicIP: '198.18.97.2',
    peers: [{ gateway: 'gw-edge', nodeName: 'edge', publicKey: parseWireguardKey(publicKeys.edge), allowedIPs: [`${TUNNEL.edge}/32` as Cidr], relays: [], underNAT: true }],
  };
}

const pingOnce = (from: Netns, to: string) => from.exec.run('ping', ['-c', '1', '-W', '1', to]).then(() => true, () => false);
/** Replies within 10 s (the first packet waits for the handshake, which a loaded machine may slow down). */
const ping = (from: Netns, to: string) => waitFor(`ping ${to}`, () => pingOnce(from, to), 10_000).then(() => true, () => false);
const nsOf = (side: 'edge' | 'cloud') => (side === 'edge' ? edge : cloud);
const wgShow = async (side: 'edge' | 'cloud', what: string) => (await nsOf(side).run('wg', 'show', devices[side], what)).trim().split('\t');
const daemonPid = async (ns: Netns) => {
  const pids = (await ns.run('ip', 'netns', 'pids', ns.name)).split('\n').filter((p) => /^\d+$/.test(p));
  const exe = (pid: string) => {
    try {
      return readlinkSync(`/proc/${pid}/exe`);
    } catch {
      return undefined; // exited meanwhile
    }
  };
  const daemons = pids.filter((pid) => exe(pid) === wireguardGo);
  expect(daemons).toHaveLength(1);
  return Number(daemons[0]);
};

beforeAll(async () => {
  [edge, cloud] = [await createNetns('rvwge'), await createNetns('rvwgc')];
  await createVethPair({ ns: edge, name: 'wge0', addresses: ['198.18.97.1/24'] }, { ns: cloud, name: 'wgc0', addresses: ['198.18.97.2/24'] });
  for (const side of ['edge', 'cloud'] as const) {
    const dir = mkdtempSync(join(tmpdir(), `raven-wggo-${side}-`));
    dirs.push(dir);
    publicKeys[side] = (await newDriver(side, dir).init()).publicKey;
  }
  for (const side of ['edge', 'cloud'] as const) {
    const ns = nsOf(side);
    expect(await drivers[side][0]!.apply(planFor(side))).toEqual({ changed: true });
    await ns.run('ip', 'address', 'add', `${TUNNEL[side]}/24`, 'dev', devices[side]);
    await ns.run('ip', 'link', 'set', devices[side], 'mtu', '1420', 'up');
  }
});

afterAll(async () => {
  await edge?.destroy(); // kills the daemons; SIGKILL leaves their sockets behind
  await cloud?.destroy();
  for (const d of Object.values(devices)) rmSync(`/run/wireguard/${d}.sock`, { force: true });
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('the pinned wireguard-go under the agent driver', () => {
  it('runs the pinned binary, whose TUN device has TCP and UDP segmentation offload on', async () => {
    expect((await edge.exec.run(wireguardGo, ['--version'])).stdout).toMatch(/^wireguard-go v0\.0\.2025/);
    await daemonPid(edge);
    await daemonPid(cloud);
    const features = await edge.run('ethtool', '-k', devices.edge);
    // Debian's wireguard-go 0.0.20220316 has both off: its TUN device has no virtio-net header.
    expect(features).toMatch(/^tcp-segmentation-offload: on$/m);
    expect(features).toMatch(/^tx-udp-segmentation: on/m);
  });

  it('completes the handshake and carries traffic both ways', async () => {
    expect(await ping(edge, TUNNEL.cloud)).toBe(true);
    expect(await ping(cloud, TUNNEL.edge)).toBe(true);
    const [, handshake] = await wgShow('cloud', 'latest-handshakes');
    expect(Number(handshake)).toBeGreaterThan(0);
  });

  it('sends persistent keepalives while idle, so a NAT mapping and the far side learn the endpoint without traffic', async () => {
    const received = async () => Number((await wgShow('cloud', 'transfer'))[1]);
    const before = await received();
    // Nothing is sent over the tunnel now; only keepalives (32 bytes each, 1 s interval) can move the counter.
    await new Promise((r) => setTimeout(r, 3_500));
    expect((await received()) - before).toBeGreaterThanOrEqual(64);
  });

  it('roams: when the edge moves to another address, the cloud follows it from the next authenticated packet', async () => {
    expect((await wgShow('cloud', 'endpoints'))[1]).toBe('198.18.97.1:4500');
    await edge.run('ip', 'address', 'del', '198.18.97.1/24', 'dev', 'wge0');
    await edge.run('ip', 'address', 'add', '198.18.97.3/24', 'dev', 'wge0');
    // The cloud has no endpoint configured for the edge: only the edge's keepalives can tell it where it went.
    await waitFor('the cloud to roam', async () => (await wgShow('cloud', 'endpoints'))[1] === '198.18.97.3:4500', 10_000);
    expect(await ping(cloud, TUNNEL.edge)).toBe(true);
  });

  it('is adopted by a restarted agent: same daemon, same session, nothing re-applied', async () => {
    const pid = await daemonPid(edge);
    const [, handshake] = await wgShow('edge', 'latest-handshakes');
    const restarted = newDriver('edge', dirs[0]!);
    await restarted.init();
    expect(await restarted.apply(planFor('edge'))).toEqual({ changed: false });
    expect(await daemonPid(edge)).toBe(pid);
    expect((await wgShow('edge', 'latest-handshakes'))[1]).toBe(handshake);
    expect(await ping(edge, TUNNEL.cloud)).toBe(true);
  });
});
