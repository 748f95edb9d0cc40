import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayV1beta1Schema, type Gateway } from '@raven/api-types';
import { NO_CHANGES } from '@raven/netlink';
import { addAddress, createBridge, createNetns, type Netns } from '@raven/testbed';
import { DataPathApplier } from '../src/datapath.ts';
import { planDataPath, type DataPathPlan } from '../src/planner.ts';

// The applier skips subsystems whose desired state it last applied, unless asked to verify (the agent's resync):
// between resyncs a change someone else makes in the kernel stays; the next verifying apply repairs it.
let ns: Netns;

function plan(remoteSubnets: string[]): DataPathPlan {
  const gateway = (name: string, node: string, ip: string, publicIP: string, subnets: string[]): Gateway => gatewayV1beta1Schema.parse({
    apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name },
    status: {
      activeEndpoints: [{ nodeName: node, type: 'tunnel', port: 4500, underNAT: false, publicIP, config: { 'enable-l3-tunnel': 'true', publicKey: Buffer.alloc(32, name.length).toString('base64') } }],
      nodes: [{ nodeName: node, privateIP: ip, subnets }],
    },
  });
  return planDataPath({
    nodeName: 'self', memberOf: 'gw-local', l3Enabled: true, forwardNodeIP: false, driver: 'wireguard', keepaliveSeconds: 5,
    host: { privateIP: '172.30.9.2', underlayDevice: 'eth0', underlayMtu: 1500 },
    gateways: [gateway('gw-local', 'self', '172.30.9.2', '198.18.9.1', ['10.0.9.0/24']), gateway('gw-remote', 'remote', '172.31.9.2', '198.18.9.2', remoteSubnets)],
  });
}

const routes = async () => (await ns.run('ip', 'route', 'show', 'table', '9028')).trim().split('\n').map((l) => l.split(' ')[0]).sort();
const marked = async () => (await ns.run('ipset', 'list', 'raven-mark-set')).split('Members:\n')[1]!.trim().split('\n').sort();

beforeAll(async () => {
  ns = await createNetns('rvdp');
  await createBridge(ns, 'eth0', {});
  await addAddress(ns, 'eth0', '172.30.9.2/24');
  await createBridge(ns, 'raven-wg0', {}); // stands in for the WireGuard device, which the VPN driver creates
});

afterAll(async () => {
  await ns?.destroy();
});

describe('DataPathApplier between resyncs', () => {
  const applier = () => new DataPathApplier(ns.exec);
  let shared: DataPathApplier;

  it('applies everything the first time, and nothing when nothing changed', async () => {
    shared = applier();
    const first = await shared.apply(plan(['10.9.1.0/24', '10.9.2.0/24']), { verify: false });
    expect(first.added).toBeGreaterThan(0);
    expect(await routes()).toEqual(['10.9.1.0/24', '10.9.2.0/24', '172.31.9.2']);
    expect(await shared.apply(plan(['10.9.1.0/24', '10.9.2.0/24']), { verify: false })).toEqual(NO_CHANGES);
  });

  it('leaves a foreign change alone until an apply verifies, which repairs it', async () => {
    await ns.run('ip', 'route', 'del', '10.9.1.0/24', 'table', '9028');
    await ns.run('ipset', 'del', 'raven-mark-set', '10.9.2.0/24');
    expect(await shared.apply(plan(['10.9.1.0/24', '10.9.2.0/24']), { verify: false })).toEqual(NO_CHANGES);
    expect(await routes()).toEqual(['10.9.2.0/24', '172.31.9.2']);
    const repaired = await shared.apply(plan(['10.9.1.0/24', '10.9.2.0/24']), { verify: true });
    expect(repaired.added).toBe(2);
    expect(await routes()).toEqual(['10.9.1.0/24', '10.9.2.0/24', '172.31.9.2']);
    expect(await marked()).toEqual(['10.9.1.0/24', '10.9.2.0/24', '172.31.9.2']);
    // What /debug/diagnose reports: the verifying apply repaired drift, and names what was missing.
    const drift = shared.history().drift;
    expect(drift.map((d) => d.subsystem)).toEqual(expect.arrayContaining(['routes', 'ipsets']));
    expect(drift.find((d) => d.subsystem === 'routes')!.samples.added).toEqual(['10.9.1.0/24 table 9028 dev raven-wg0']);
  });

  it('applies a changed input at once, as a diff against the last apply, without reading the kernel back', async () => {
    await ns.run('ip', 'route', 'del', '10.9.1.0/24', 'table', '9028'); // foreign, in a subsystem whose input changes
    await ns.run('ip', 'rule', 'del', 'priority', '101'); // foreign, in one whose input does not
    const changed = await shared.apply(plan(['10.9.1.0/24', '10.9.3.0/24']), { verify: false });
    // 10.9.3.0/24 in and 10.9.2.0/24 out, as a route, in the mark set and (this is the central gateway, which relays)
    // in the skip-NAT set. The foreign changes stay until a verifying apply.
    expect(changed).toEqual({ added: 3, removed: 3, changed: 0 });
    expect(await routes()).toEqual(['10.9.3.0/24', '172.31.9.2']);
    expect(await marked()).toEqual(['10.9.1.0/24', '10.9.3.0/24', '172.31.9.2']);
    expect(await ns.run('ip', 'rule', 'show', 'priority', '101')).toBe('');
    expect(await shared.apply(plan(['10.9.1.0/24', '10.9.3.0/24']), { verify: true })).toEqual({ added: 2, removed: 0, changed: 0 });
    expect(await routes()).toEqual(['10.9.1.0/24', '10.9.3.0/24', '172.31.9.2']);
    expect(await ns.run('ip', 'rule', 'show', 'priority', '101')).toContain('lookup 9028');
  });

  it('adds and removes a second family the same way, leaving the kernel as a full read expects it', async () => {
    const members = async () => (await ns.run('ipset', 'list', 'raven-mark-set-v6')).split('Members:\n')[1]!.trim();
    await shared.apply(plan(['10.9.1.0/24', '10.9.3.0/24', 'fd00:9::/64']), { verify: false });
    expect(await members()).toBe('fd00:9::/64');
    expect(await ns.run('ip', '-6', 'route', 'show', 'table', '9028')).toContain('fd00:9::/64 dev raven-wg0');
    await shared.apply(plan(['10.9.1.0/24', '10.9.3.0/24']), { verify: false });
    expect(await members()).toBe('');
    expect(await shared.apply(plan(['10.9.1.0/24', '10.9.3.0/24']), { verify: true })).toEqual(NO_CHANGES);
  });

  it('has nothing cached when new (an agent restart), so it reads the kernel', async () => {
    await ns.run('ip', 'route', 'del', '10.9.3.0/24', 'table', '9028');
    expect((await applier().apply(plan(['10.9.1.0/24', '10.9.3.0/24']), { verify: false })).added).toBe(1);
  });
});
