import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@raven/controller-kit';
import { addAddress, createNetns, createVethPair, setLinkUp, waitFor, type Netns } from '@raven/testbed';
import type { Cidr } from '@raven/api-types';
import type { VpnPlan } from '../src/planner.ts';
import { VpnDriverError } from '../src/vpn/driver.ts';
import { LibreswanDriver } from '../src/vpn/libreswan.ts';

// IKE runs here; ESP does not (this kernel has no ESP), so child SAs cannot be installed. These tests prove everything
// up to that point: pluto's lifecycle under our own rundir, connection management, PSK authentication.
const log = createLogger('test', { level: 'silent' });
let a: Netns;
let b: Netns;
const dirs: string[] = [];

const planFor = (self: 'a' | 'b'): VpnPlan => {
  const [me, peer, myIP, peerIP, mySubnet, peerSubnet] = self === 'a'
    ? ['gw-a', 'gw-b', '198.18.98.1', '198.18.98.2', '10.201.0.0/24', '10.202.0.0/24']
    : ['gw-b', 'gw-a', '198.18.98.2', '198.18.98.1', '10.202.0.0/24', '10.201.0.0/24'];
  return {
    gateway: me, device: 'raven-wg0', listenPort: 4500, mtu: 1436, underNAT: false, localSubnets: [mySubnet], localPrivateIP: myIP, localPublicIP: myIP,
    peers: [{ gateway: peer, nodeName: peer, publicIP: peerIP, endpoint: `${peerIP}:4500`, allowedIPs: [peerSubnet] as Cidr[], relays: [], underNAT: false }],
  };
};

function driver(ns: Netns, psk: string | undefined): LibreswanDriver {
  const stateDir = mkdtempSync(join(tmpdir(), 'raven-ipsec-'));
  dirs.push(stateDir);
  return new LibreswanDriver({ exec: ns.exec, log, stateDir, psk: () => psk });
}

const plutoLog = (d: LibreswanDriver) => readFileSync(join((d as unknown as { dir: string }).dir, 'pluto.log'), 'utf8');

beforeAll(async () => {
  [a, b] = [await createNetns('rvipa'), await createNetns('rvipb')];
  await createVethPair({ ns: a, name: 'ipa0' }, { ns: b, name: 'ipb0' });
  await addAddress(a, 'ipa0', '198.18.98.1/24');
  await addAddress(b, 'ipb0', '198.18.98.2/24');
  await setLinkUp(a, 'ipa0');
  await setLinkUp(b, 'ipb0');
});

afterAll(async () => {
  await a?.destroy();
  await b?.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('libreswan driver (pluto/whack) between two namespaces', () => {
  it('refuses to run without the PSK', async () => {
    const d = driver(a, undefined);
    await d.init();
    await expect(d.apply(planFor('a'))).rejects.toBeInstanceOf(VpnDriverError);
  });

  it('establishes the IKE SA with the PSK, is idempotent, keeps foreign connections, and cleans up only its own', async () => {
    const [da, db] = [driver(a, 'a-long-enough-shared-secret-for-tests'), driver(b, 'a-long-enough-shared-secret-for-tests')];
    await Promise.all([da.init(), db.init()]);
    expect((await db.apply(planFor('b'))).changed).toBe(true);
    expect((await da.apply(planFor('a'))).changed).toBe(true);
    await waitFor('IKE SA established on both ends', async () => /established IKE SA/.test(plutoLog(da)) && /established IKE SA/.test(plutoLog(db)), 20_000, 200);
    // The child SA reaches the kernel and is refused there: this is where a kernel without ESP stops.
    await waitFor('the kernel refuses the ESP SA', async () => /Add SA esp\..*errno 38|setup_half_ipsec_sa\(\) hit fail/.test(plutoLog(da) + plutoLog(db)), 20_000, 200);
    expect((await da.apply(planFor('a'))).changed).toBe(false);

    const rundir = join((da as unknown as { dir: string }).dir, 'run');
    await a.exec.run('ipsec', ['whack', '--rundir', rundir, '--name', 'foreign-conn', '--ikev2', '--psk', '--encrypt', '--host', '198.18.98.1', '--to', '--host', '198.18.98.9']);
    const moved = { ...planFor('a'), localSubnets: ['10.201.1.0/24'] };
    expect((await da.apply(moved)).changed).toBe(true);
    const status = (await a.exec.run('ipsec', ['whack', '--rundir', rundir, '--status'])).stdout;
    expect(status).toContain('"foreign-conn"');
    expect(status).toMatch(/"raven-gw-b-[0-9a-f]{10}": 10\.201\.1\.0\/24/);
    expect(status).not.toMatch(/"raven-gw-b-[0-9a-f]{10}": 10\.201\.0\.0\/24/);

    await da.cleanup();
    await db.cleanup();
    await waitFor('our plutos stopped', async () => (await a.exec.run('ipsec', ['whack', '--rundir', rundir, '--status']).then(() => false, () => true)), 10_000);
  });

  it('fails authentication with a different PSK', async () => {
    const [da, db] = [driver(a, 'one-long-enough-shared-secret-xx'), driver(b, 'another-long-enough-shared-secret')];
    await Promise.all([da.init(), db.init()]);
    await db.apply(planFor('b'));
    await da.apply(planFor('a'));
    await waitFor('authentication failure logged', async () => /AUTHENTICATION_FAILED|authentication failed|failed to verify/i.test(plutoLog(da) + plutoLog(db)), 20_000, 200);
    expect(plutoLog(da)).not.toMatch(/established IKE SA/);
    await da.cleanup();
    await db.cleanup();
  });
});
