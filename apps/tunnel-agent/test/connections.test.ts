import { describe, expect, it } from 'vitest';
import type { Cidr, Connection, WireguardKey } from '@raven/api-types';
import { createLogger } from '@raven/controller-kit';
import type { Exec } from '@raven/netlink';
import { connectionsWriteDue, peerReports } from '../src/connections.ts';
import type { PeerPlan, ProbeTarget } from '../src/planner.ts';
import type { PeerHealth } from '../src/probe.ts';
import type { PeerStatus } from '../src/vpn/driver.ts';
import { LibreswanDriver } from '../src/vpn/libreswan.ts';
import { WireguardDriver } from '../src/vpn/wireguard.ts';

const exec: Exec = { run: async () => ({ stdout: '', stderr: '' }) };
const log = createLogger('t', { level: 'silent' });
const drivers = {
  wireguard: new WireguardDriver({ exec, log, stateDir: '/nonexistent', device: 'raven-wg0', implementation: 'kernel' }),
  libreswan: new LibreswanDriver({ exec, log, stateDir: '/nonexistent', psk: () => 's' }),
};

const cloud: PeerPlan = {
  gateway: 'gw-cloud', nodeName: 'c1', publicKey: `${'C'.repeat(42)}A=` as WireguardKey, endpoint: '198.18.0.11:4500', publicIP: '198.18.0.11',
  allowedIPs: ['10.224.0.0/26'] as Cidr[], relays: ['gw-qd'], underNAT: false,
};
const edge: PeerPlan = { gateway: 'gw-edge', nodeName: 'e1', allowedIPs: ['10.9.0.0/24'] as Cidr[], relays: [], underNAT: true };
const targets: ProbeTarget[] = [
  { gateway: 'gw-cloud', nodeName: 'c1', ip: '192.168.0.195', via: cloud, relayed: false },
  { gateway: 'gw-qd', nodeName: 'qd-2', ip: '172.16.1.90', via: cloud, relayed: true },
  { gateway: 'gw-edge', nodeName: 'e1', via: edge, relayed: false },
];
const up: PeerHealth = { reachable: true, lastRttMs: 1.5, minRttMs: 1, avgRttMs: 1.25, maxRttMs: 2 };
const down: PeerHealth = { reachable: false, lastError: 'no reply to the last 3 probes' };
const rtt = { last: '1.500ms', min: '1.000ms', average: '1.250ms', max: '2.000ms' };

describe('peerReports', () => {
  it.each<[string, keyof typeof drivers, Record<string, PeerHealth>, PeerStatus[], Connection[], string[]]>([
    ['all reachable over WireGuard, the NATed peer at the endpoint WireGuard learned', 'wireguard', { 'gw-cloud': up, 'gw-qd': up, 'gw-edge': up },
      [{ gateway: 'gw-cloud', nodeName: 'c1', rxBytes: 1, txBytes: 2 }, { gateway: 'gw-edge', nodeName: 'e1', endpoint: '203.0.113.9:4500', rxBytes: 3, txBytes: 4 }], [
        { gateway: 'gw-cloud', nodeName: 'c1', endpoint: '198.18.0.11:4500', status: 'Connected', latencyRTT: rtt },
        { gateway: 'gw-qd', nodeName: 'qd-2', status: 'Connected', latencyRTT: rtt, relayedVia: 'gw-cloud' },
        { gateway: 'gw-edge', nodeName: 'e1', endpoint: '203.0.113.9:4500', status: 'Connected', latencyRTT: rtt },
      ], ['gw-cloud/c1', 'gw-edge/e1']],
    ['WireGuard: a peer without a public key is an Error, the others Connecting', 'wireguard', { 'gw-cloud': down, 'gw-qd': down, 'gw-edge': down }, [], [
      { gateway: 'gw-cloud', nodeName: 'c1', endpoint: '198.18.0.11:4500', status: 'Connecting', statusMessage: down.lastError },
      { gateway: 'gw-qd', nodeName: 'qd-2', status: 'Connecting', statusMessage: down.lastError, relayedVia: 'gw-cloud' },
      { gateway: 'gw-edge', nodeName: 'e1', status: 'Error', statusMessage: 'the peer has not published its public key' },
    ], []],
    // Before drivers reported their own peers, every libreswan peer was "Error: has not published its public key".
    ['libreswan: an unreachable peer is Connecting, and its traffic counts', 'libreswan', { 'gw-cloud': up, 'gw-qd': down, 'gw-edge': down },
      [{ gateway: 'gw-edge', nodeName: 'e1', endpoint: '203.0.113.9', rxBytes: 84, txBytes: 0 }], [
        { gateway: 'gw-cloud', nodeName: 'c1', endpoint: '198.18.0.11:4500', status: 'Connected', latencyRTT: rtt },
        { gateway: 'gw-qd', nodeName: 'qd-2', status: 'Connecting', statusMessage: down.lastError, relayedVia: 'gw-cloud' },
        { gateway: 'gw-edge', nodeName: 'e1', endpoint: '203.0.113.9', status: 'Connecting', statusMessage: down.lastError },
      ], ['gw-edge/e1']],
  ])('%s', (_what, driver, health, tunnels, want, withTunnel) => {
    const reports = peerReports(targets, (g) => health[g]!, tunnels, (p) => drivers[driver].unconfigured(p));
    expect(reports.map((r) => r.connection)).toEqual(want);
    expect(reports.filter((r) => r.tunnel).map((r) => `${r.tunnel!.gateway}/${r.tunnel!.nodeName}`)).toEqual(withTunnel);
  });
});

describe('peerReports with NAT traversal', () => {
  it('says why a relayed peer is relayed, and only for relayed peers', () => {
    const reports = peerReports(targets, () => up, [], () => undefined, (g) => `reason for ${g}`);
    expect(reports.map((r) => r.connection.relayReason)).toEqual([undefined, 'reason for gw-qd', undefined]);
  });
});

describe('connectionsWriteDue', () => {
  const c = (gateway: string, status: Connection['status']): Connection => ({ gateway, nodeName: 'n', status });
  it.each<[string, { written: Connection[]; next: Connection[]; lastWriteMs: number; nowMs: number; force?: boolean }, boolean]>([
    ['nothing changed, written a moment ago', { written: [c('a', 'Connected')], next: [c('a', 'Connected')], lastWriteMs: 0, nowMs: 59_999 }, false],
    ['nothing changed but the RTTs are a minute old', { written: [c('a', 'Connected')], next: [c('a', 'Connected')], lastWriteMs: 0, nowMs: 60_000 }, true],
    ['a peer changed status', { written: [c('a', 'Connected')], next: [c('a', 'Connecting')], lastWriteMs: 0, nowMs: 1 }, true],
    ['a peer appeared', { written: [], next: [c('a', 'Connected')], lastWriteMs: 0, nowMs: 1 }, true],
    ['a forced clear of reports already clear', { written: [], next: [], lastWriteMs: 0, nowMs: 120_000, force: true }, false],
    ['a forced clear', { written: [c('a', 'Connected')], next: [], lastWriteMs: 0, nowMs: 1, force: true }, true],
    // NATed gateways punch towards the mappings the central gateway reports: a moved one is news at once.
    ['a peer\'s observed endpoint moved', { written: [{ ...c('a', 'Connected'), endpoint: '198.18.0.12:4500' }], next: [{ ...c('a', 'Connected'), endpoint: '198.18.0.77:4500' }], lastWriteMs: 0, nowMs: 1 }, true],
    ['why a peer is relayed changed', { written: [{ ...c('a', 'Connected'), relayReason: 'punching a direct path' }], next: [{ ...c('a', 'Connected'), relayReason: 'punch timed out after 15 s' }], lastWriteMs: 0, nowMs: 1 }, true],
  ])('%s', (_what, opts, want) => {
    expect(connectionsWriteDue(opts)).toBe(want);
  });
});
