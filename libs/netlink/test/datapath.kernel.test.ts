import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { createBridge, createNetns, createVethPair, type Netns } from '@raven/testbed';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AddressReconciler, CommandError, FdbReconciler, IpsetReconciler, IptablesReconciler, LinkReconciler, NeighbourReconciler, RouteReconciler,
  RuleReconciler, SysctlReconciler, reconcile, sumSummaries, type ApplySummary, type Exec, type IptablesDesired,
} from '../src/index.ts';

/**
 * The Raven vxlan data path between two gateways, programmed only through the reconcilers:
 *   podA (10.1.0.2) — gwA ==vxlan raven0 over 198.18.0.0/24== gwB — podB (10.2.0.2)
 * Pod traffic to the remote pod CIDR is marked 0x40 in mangle (dst in raven-mark-set), the fwmark rule sends it to
 * table 9027, whose route goes through raven0 to the peer VTEP (permanent neighbour + FDB entry). A foreign MASQUERADE
 * on gwA would hide podA's address unless RAVEN-POSTROUTING's bypass runs first.
 */
interface Gateway {
  underlay: string;
  vtep: string;
  mac: string;
  podCidr: string;
  podGateway: string;
}
const A: Gateway = { underlay: '198.18.0.1', vtep: '10.250.0.1', mac: '02:00:0a:fa:00:01', podCidr: '10.1.0.0/24', podGateway: '10.1.0.1' };
const B: Gateway = { underlay: '198.18.0.2', vtep: '10.250.0.2', mac: '02:00:0a:fa:00:02', podCidr: '10.2.0.0/24', podGateway: '10.2.0.1' };
const MARK_RULE = '-m set --match-set raven-mark-set dst -j MARK --set-xmark 0x40/0x40';
const BYPASS_RULE = '-m set --match-set raven-mark-set dst -j ACCEPT';

function reconcilers(exec: Exec) {
  return {
    links: new LinkReconciler(exec, { owned: ['raven0'] }),
    sysctls: new SysctlReconciler(exec, { keys: ['net.ipv4.ip_forward', 'net.ipv4.conf.all.rp_filter', 'net.ipv4.conf.raven0.rp_filter'] }),
    addresses: new AddressReconciler(exec, { devices: ['raven0'] }),
    neighbours: new NeighbourReconciler(exec, { devices: ['raven0'] }),
    fdb: new FdbReconciler(exec, { devices: ['raven0'] }),
    routes: new RouteReconciler(exec, { tables: [9027, 9028] }),
    rules: new RuleReconciler(exec, { priorities: [100, 101], tables: [9027, 9028] }),
    ipsets: new IpsetReconciler(exec, { sets: ['raven-mark-set'] }),
    iptables: new IptablesReconciler(exec, 4, {
      chains: [{ table: 'mangle', name: 'RAVEN-MARK-CHAIN' }, { table: 'nat', name: 'RAVEN-POSTROUTING' }],
    }),
  };
}

const iptablesState: IptablesDesired = {
  chains: [
    { table: 'mangle', name: 'RAVEN-MARK-CHAIN', rules: [MARK_RULE] },
    { table: 'nat', name: 'RAVEN-POSTROUTING', rules: [BYPASS_RULE] },
  ],
  jumps: [
    { table: 'mangle', from: 'PREROUTING', to: 'RAVEN-MARK-CHAIN', position: 'last' },
    { table: 'mangle', from: 'OUTPUT', to: 'RAVEN-MARK-CHAIN', position: 'last' },
    { table: 'nat', from: 'POSTROUTING', to: 'RAVEN-POSTROUTING', position: 'first' },
  ],
};

/** What a tunnel agent would do each loop: every subsystem in dependency order. */
async function applyGateway(exec: Exec, self: Gateway, peer: Gateway): Promise<ApplySummary> {
  const r = reconcilers(exec);
  return sumSummaries(
    await reconcile(r.links, [
      { name: 'raven0', kind: 'vxlan', vni: 200, port: 4472, local: self.underlay, dev: 'uplink', mac: self.mac, mtu: 1450, up: true },
    ]),
    await reconcile(r.sysctls, { 'net.ipv4.ip_forward': 1, 'net.ipv4.conf.all.rp_filter': 0, 'net.ipv4.conf.raven0.rp_filter': 0 }),
    await reconcile(r.addresses, [{ dev: 'raven0', address: `${self.vtep}/32` }]),
    await reconcile(r.neighbours, [{ dev: 'raven0', address: peer.vtep, lladdr: peer.mac }]),
    await reconcile(r.fdb, [{ dev: 'raven0', mac: peer.mac, dst: peer.underlay }]),
    await reconcile(r.routes, [{ table: 9027, dst: peer.podCidr, via: peer.vtep, dev: 'raven0', onlink: true }]),
    await reconcile(r.rules, [{ priority: 100, fwmark: 0x40, table: 9027 }]),
    await reconcile(r.ipsets, [{ name: 'raven-mark-set', type: 'hash:net', family: 'inet', members: [peer.podCidr] }]),
    await reconcile(r.iptables, iptablesState),
  );
}

/** Cleanup order matters: iptables rules reference the ipset, routes and neighbours live on raven0. */
async function cleanupGateway(exec: Exec): Promise<void> {
  const r = reconcilers(exec);
  await r.iptables.cleanup();
  await r.ipsets.cleanup();
  await r.rules.cleanup();
  await r.routes.cleanup();
  await r.links.cleanup();
}

const ECHO_PORT = 8080;
const SERVER = `require('net').createServer((s) => s.end(s.remoteAddress + '\\n')).listen(${ECHO_PORT}, '0.0.0.0', () => console.log('ready'));`;
const CLIENT = `const s = require('net').connect({ host: process.argv[1], port: ${ECHO_PORT}, timeout: 3000 });
let data = ''; s.on('data', (c) => (data += c)); s.on('end', () => process.stdout.write(data));
s.on('timeout', () => { console.error('timeout'); process.exit(2); }); s.on('error', (e) => { console.error(e.message); process.exit(3); });`;

/** Connects from `client` to `host` and returns the source address the server saw, or the failure. */
async function probe(client: Netns, host: string): Promise<string> {
  try {
    return (await client.run(process.execPath, '-e', CLIENT, host)).trim();
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    return `unreachable: ${error.stderr.trim()}`;
  }
}

describe('vxlan data path between two gateways', () => {
  const namespaces: Netns[] = [];
  afterEach(async () => {
    for (const ns of namespaces.splice(0).reverse()) await ns.destroy();
  });

  it('carries pod traffic through marks, rules, routes and vxlan; converges; survives drift; cleans up', async () => {
    const [podA, gwA, gwB, podB] = [await createNetns('rv-poda'), await createNetns('rv-gwa'), await createNetns('rv-gwb'), await createNetns('rv-podb')];
    namespaces.push(podA, gwA, gwB, podB);
    await createVethPair({ ns: gwA, name: 'uplink', addresses: ['198.18.0.1/24'] }, { ns: gwB, name: 'uplink', addresses: ['198.18.0.2/24'] });
    await createVethPair({ ns: podA, name: 'eth0', addresses: ['10.1.0.2/24'] }, { ns: gwA, name: 'pod0' });
    await createVethPair({ ns: podB, name: 'eth0', addresses: ['10.2.0.2/24'] }, { ns: gwB, name: 'pod0' });
    await createBridge(gwA, 'cni0', { ports: ['pod0'], addresses: ['10.1.0.1/24'] });
    await createBridge(gwB, 'cni0', { ports: ['pod0'], addresses: ['10.2.0.1/24'] });
    await podA.run('ip', 'route', 'add', 'default', 'via', A.podGateway);
    await podB.run('ip', 'route', 'add', 'default', 'via', B.podGateway);
    // A foreign, catch-all MASQUERADE (as a CNI would install) and a foreign rule in a chain we also jump from.
    await gwA.run('iptables', '-t', 'nat', '-A', 'POSTROUTING', '-s', '10.1.0.0/24', '-j', 'MASQUERADE');
    await gwA.run('iptables', '-t', 'mangle', '-A', 'PREROUTING', '-p', 'udp', '--dport', '9', '-j', 'ACCEPT');

    const server = spawn('ip', ['netns', 'exec', podB.name, process.execPath, '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const [ready] = (await once(createInterface({ input: server.stdout }), 'line')) as [string];
      expect(ready).toBe('ready');
      expect(await probe(podA, '10.2.0.2')).toMatch(/^unreachable/);

      const first = [await applyGateway(gwA.exec, A, B), await applyGateway(gwB.exec, B, A)];
      for (const summary of first) expect(summary.added).toBeGreaterThanOrEqual(9);
      // podB sees podA's own address: the bypass sits before the foreign MASQUERADE.
      expect(await probe(podA, '10.2.0.2')).toBe('10.1.0.2');

      expect(await applyGateway(gwA.exec, A, B)).toEqual({ added: 0, removed: 0, changed: 0 });
      expect(await applyGateway(gwB.exec, B, A)).toEqual({ added: 0, removed: 0, changed: 0 });

      // Drift: someone puts a MASQUERADE at the very top and flushes our table; the next loop repairs exactly that.
      await gwA.run('iptables', '-t', 'nat', '-I', 'POSTROUTING', '1', '-j', 'MASQUERADE');
      await gwA.run('ip', 'route', 'flush', 'table', '9027');
      expect(await probe(podA, '10.2.0.2')).toMatch(/^unreachable/);
      expect(await applyGateway(gwA.exec, A, B)).toEqual({ added: 1, removed: 0, changed: 1 });
      expect(await probe(podA, '10.2.0.2')).toBe('10.1.0.2');
      const nat = await gwA.run('iptables', '-t', 'nat', '-S', 'POSTROUTING');
      expect(nat.split('\n').filter((l) => l.startsWith('-A'))).toEqual([
        '-A POSTROUTING -j RAVEN-POSTROUTING',
        '-A POSTROUTING -j MASQUERADE',
        '-A POSTROUTING -s 10.1.0.0/24 -j MASQUERADE',
      ]);

      await cleanupGateway(gwA.exec);
      expect(await probe(podA, '10.2.0.2')).toMatch(/^unreachable/);
      const save = await gwA.run('iptables-save');
      expect(save).not.toMatch(/RAVEN/);
      expect(save).toContain('-A PREROUTING -p udp -m udp --dport 9 -j ACCEPT');
      expect(save).toContain('-A POSTROUTING -s 10.1.0.0/24 -j MASQUERADE');
      expect(await gwA.run('ipset', 'list', '-n')).toBe('');
      expect(await gwA.run('ip', '-4', 'rule', 'show', 'priority', '100')).toBe('');
      expect(await gwA.run('ip', 'link', 'show')).not.toContain('raven0');
      expect(await gwA.run('ip', 'link', 'show')).toContain('cni0');
      // A second cleanup finds nothing and succeeds.
      await cleanupGateway(gwA.exec);
    } finally {
      server.kill('SIGKILL');
    }
  });
});
