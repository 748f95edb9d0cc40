import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '@raven/controller-kit';
import { hostExec } from '@raven/netlink';
import type { VpnPlan } from '../src/planner.ts';
import { loadOrCreateKeys } from '../src/vpn/keys.ts';
import { WireguardDriver, parseDump } from '../src/vpn/wireguard.ts';

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
      gateway: 'gw', device: 'raven-wg0', listenPort: 4500, mtu: 1420, presharedKey: 'cHNr', underNAT: true, localSubnets: [], localPrivateIP: '10.0.0.1',
      peers: [
        { gateway: 'gw-c', nodeName: 'c', publicKey: 'Ckey=', endpoint: '198.18.0.11:4500', allowedIPs: ['10.1.0.0/24', '10.2.0.0/24'], keepaliveSeconds: 5, relays: [], underNAT: false },
        { gateway: 'gw-s', nodeName: 's', publicKey: 'Skey=', allowedIPs: [], relays: [], underNAT: true },
        { gateway: 'gw-x', nodeName: 'x', allowedIPs: ['10.3.0.0/24'], relays: [], underNAT: true },
      ],
    };
    const text = driver.renderConfig(plan);
    expect(text).toContain('ListenPort = 4500');
    expect(text).toContain('[Peer]\nPublicKey = Ckey=\nPresharedKey = cHNr\nEndpoint = 198.18.0.11:4500\nAllowedIPs = 10.1.0.0/24, 10.2.0.0/24\nPersistentKeepalive = 5');
    expect(text).toContain('[Peer]\nPublicKey = Skey=\nPresharedKey = cHNr\n');
    expect(text).not.toContain('10.3.0.0/24'); // no public key yet: no peer
  });

  it('parses `wg show dump`', () => {
    const dump = 'priv\tpub\t4500\toff\nPEER1\t(none)\t198.18.0.11:4500\t10.1.0.0/24\t1700000000\t100\t200\t5\nPEER2\t(none)\t(none)\t(none)\t0\t0\t0\toff\n';
    expect(parseDump(dump)).toEqual([
      { id: 'PEER1', endpoint: '198.18.0.11:4500', latestHandshake: new Date(1700000000 * 1000), rxBytes: 100, txBytes: 200 },
      { id: 'PEER2', endpoint: undefined, latestHandshake: undefined, rxBytes: 0, txBytes: 0 },
    ]);
  });
});
