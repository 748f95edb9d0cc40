import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '@raven/controller-kit';
import { hostExec } from '@raven/netlink';
import type { Cidr, WireguardKey } from '@raven/api-types';
import type { VpnPlan } from '../src/planner.ts';
import { loadOrCreateKeys } from '../src/vpn/keys.ts';
import { VpnDriverError } from '../src/vpn/driver.ts';
import { WireguardDriver, parseDump, renderWireguardConfig, wireguardPeerStatus } from '../src/vpn/wireguard.ts';

const key = (letter: string) => `${letter.repeat(42)}A=` as WireguardKey;
const cidrs = (...c: string[]) => c as Cidr[];
const K = { C: key('C'), S: key('S'), PSK: key('P') };

const dir = mkdtempSync(join(tmpdir(), 'raven-wgkeys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('WireGuard keys', () => {
  it('generates an X25519 key once, stores it 0600, and derives the public key exactly as `wg pubkey` does', () => {
    const first = loadOrCreateKeys(dir);
    expect(statSync(first.privateKeyFile).mode & 0o777).toBe(0o600);
    expect(loadOrCreateKeys(dir)).toEqual(first);
    const expected = execFileSync('wg', ['pubkey'], { input: readFileSync(first.privateKeyFile) }).toString().trim();
    expect(first.publicKey).toBe(expected);
  });
});

describe('WireGuard config', () => {
  it('renders peers with keys only, the PSK, endpoints, allowed IPs and keepalive', async () => {
    const driver = new WireguardDriver({ exec: hostExec, log: createLogger('t', { level: 'silent' }), stateDir: dir, device: 'raven-wg0', implementation: 'userspace' });
    await driver.init();
    const plan: VpnPlan = {
      gateway: 'gw', device: 'raven-wg0', listenPort: 4500, mtu: 1420, presharedKey: K.PSK, underNAT: true, localSubnets: [], localPrivateIP: '10.0.0.1',
      peers: [
        { gateway: 'gw-c', nodeName: 'c', publicKey: K.C, endpoint: '198.18.0.11:4500', allowedIPs: cidrs('10.1.0.0/24', '10.2.0.0/24'), keepaliveSeconds: 5, relays: [], underNAT: false },
        { gateway: 'gw-s', nodeName: 's', publicKey: K.S, allowedIPs: [], relays: [], underNAT: true },
        { gateway: 'gw-x', nodeName: 'x', allowedIPs: cidrs('10.3.0.0/24'), relays: [], underNAT: true },
      ],
    };
    const text = driver.renderConfig(plan);
    expect(text).toContain('ListenPort = 4500');
    expect(text).toContain(`[Peer]\nPublicKey = ${K.C}\nPresharedKey = ${K.PSK}\nEndpoint = 198.18.0.11:4500\nAllowedIPs = 10.1.0.0/24, 10.2.0.0/24\nPersistentKeepalive = 5`);
    expect(text).toContain(`[Peer]\nPublicKey = ${K.S}\nPresharedKey = ${K.PSK}\n`);
    expect(text).not.toContain('10.3.0.0/24'); // no public key yet: no peer
  });

  // Values reach the renderer typed, but the renderer checks them once more: none may carry a second directive.
  const base = (peer: Partial<VpnPlan['peers'][number]>, over: Partial<VpnPlan> = {}): VpnPlan => ({
    gateway: 'gw', device: 'raven-wg0', listenPort: 4500, mtu: 1420, underNAT: false, localSubnets: [], localPrivateIP: '10.0.0.1',
    peers: [{ gateway: 'gw-c', nodeName: 'c', publicKey: K.C, allowedIPs: cidrs('10.1.0.0/24'), relays: [], underNAT: false, ...peer }], ...over,
  });
  it.each<[string, VpnPlan]>([
    ['a public key carrying AllowedIPs and Endpoint lines', base({ publicKey: `${K.C}\nAllowedIPs = 10.99.0.0/16\nEndpoint = 203.0.113.66:51820` as WireguardKey })],
    ['a public key of 31 bytes', base({ publicKey: Buffer.alloc(31, 1).toString('base64') as WireguardKey })],
    ['an allowed IP carrying a second peer', base({ allowedIPs: cidrs('10.1.0.0/24\n[Peer]') })],
    ['an allowed IP that is not a CIDR', base({ allowedIPs: cidrs('10.1.0.0') })],
    ['an endpoint with a hostname', base({ endpoint: 'attacker.example:4500' })],
    ['an endpoint carrying a newline', base({ endpoint: '198.18.0.11:4500\nAllowedIPs = 0.0.0.0/0' })],
    ['an IPv6 endpoint without brackets', base({ endpoint: '2001:db8::1:4500' })],
    ['a preshared key with a newline', base({}, { presharedKey: `${K.PSK}\n` as WireguardKey })],
    ['a listen port of 0', base({}, { listenPort: 0 })],
  ])('refuses to render %s', (_what, plan) => {
    expect(() => renderWireguardConfig(key('Z'), plan)).toThrow(VpnDriverError);
  });

  it('renders an IPv6 endpoint in brackets', () => {
    expect(renderWireguardConfig(key('Z'), base({ endpoint: '[2001:db8::1]:4500' }))).toContain('Endpoint = [2001:db8::1]:4500\n');
  });

  it('parses `wg show dump`', () => {
    const dump = 'priv\tpub\t4500\toff\nPEER1\t(none)\t198.18.0.11:4500\t10.1.0.0/24\t1700000000\t100\t200\t5\nPEER2\t(none)\t(none)\t(none)\t0\t0\t0\toff\n';
    expect(parseDump(dump)).toEqual([
      { publicKey: 'PEER1', endpoint: '198.18.0.11:4500', latestHandshake: new Date(1700000000 * 1000), rxBytes: 100, txBytes: 200 },
      { publicKey: 'PEER2', endpoint: undefined, latestHandshake: undefined, rxBytes: 0, txBytes: 0 },
    ]);
  });

  it('joins the dump to the plan by public key and reports each peer by gateway and node', () => {
    const plan = base({ endpoint: '198.18.0.11:4500' });
    plan.peers.push({ gateway: 'gw-x', nodeName: 'x', allowedIPs: [], relays: [], underNAT: true }, { gateway: 'gw-s', nodeName: 's', publicKey: K.S, allowedIPs: [], relays: [], underNAT: true });
    const dump = `priv\tpub\t4500\toff\n${K.C}\t(none)\t198.18.0.11:4500\t10.1.0.0/24\t1700000000\t100\t200\t5\nUNPLANNED\t(none)\t(none)\t(none)\t0\t1\t2\toff\n`;
    expect(wireguardPeerStatus(plan, dump)).toEqual([
      { gateway: 'gw-c', nodeName: 'c', endpoint: '198.18.0.11:4500', latestHandshake: new Date(1700000000 * 1000), rxBytes: 100, txBytes: 200 },
    ]);
  });
});
