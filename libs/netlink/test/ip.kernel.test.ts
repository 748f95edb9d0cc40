import { createBridge, createNetns, createVethPair, type Netns } from '@raven/testbed';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AddressReconciler, BatchError, CommandError, FdbReconciler, HostExec, LinkNotFoundError, LinkReconciler, NeighbourReconciler, NetnsExec,
  RouteReconciler, RuleReconciler, SysctlReconciler, reconcile, runBatch, type LinkSpec, type RouteSpec, type RuleSpec,
} from '../src/index.ts';

const NO_CHANGES = { added: 0, removed: 0, changed: 0 };
let ns: Netns;

beforeEach(async () => {
  ns = await createNetns('rv-ip');
  await createVethPair({ ns, name: 'uplink', addresses: ['198.18.0.1/24', '2001:db8::1/64'] }, { ns, name: 'peer' });
});
afterEach(async () => {
  await ns.destroy();
});

const json = async <T>(...args: string[]): Promise<T> => JSON.parse(await ns.run('ip', '-j', ...args)) as T;

describe('exec', () => {
  it('runs inside the namespace and reports failures as CommandError', async () => {
    const links = await json<Array<{ ifname: string }>>('link', 'show');
    expect(links.map((l) => l.ifname).sort()).toEqual(['lo', 'peer', 'uplink']);
    const failure = await new NetnsExec(ns.name).run('ip', ['link', 'show', 'nosuch0']).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(CommandError);
    expect(failure).toMatchObject({ cmd: 'ip', exitCode: 1, stderr: expect.stringContaining('nosuch0') as unknown });
    const missing = await new HostExec().run('/nonexistent/tool', []).catch((e: unknown) => e);
    expect(missing).toMatchObject({ exitCode: null });
    expect((await ns.exec.run('cat', [], { input: 'stdin works' })).stdout).toBe('stdin works');
  });

  it('tolerates deletes of absent objects in a batch but reports real failures by line', async () => {
    await runBatch(ns.exec, 'ip', ['route del 10.77.0.0/24 table 9027', 'address del 10.9.9.9/32 dev uplink', 'link del dev nosuch0']);
    const error = await runBatch(ns.exec, 'ip', ['route del 10.77.0.0/24 table 9027', 'route replace 10.0.0.0/8 dev nosuch0 table 9027', 'route replace 10.1.0.0/16 dev uplink table 9027']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BatchError);
    expect((error as BatchError).failures.map((f) => f.line)).toEqual([2]);
    // -force: the line after the failure was still applied.
    expect(await ns.run('ip', 'route', 'show', 'table', '9027')).toContain('10.1.0.0/16 dev uplink');
  });
});

describe('links and addresses', () => {
  const vxlan: LinkSpec = { name: 'raven0', kind: 'vxlan', vni: 200, port: 4472, local: '198.18.0.1', dev: 'uplink', mtu: 1450, up: true };

  it('creates a vxlan, adopts a foreign link, recreates on VNI change and deletes only owned links', async () => {
    // Created "elsewhere": a foreign device standing in for the VPN driver's WireGuard link, and an unrelated vxlan.
    await createBridge(ns, 'raven-wg0', { up: false });
    await ns.run('ip', 'link', 'add', 'vx-foreign', 'type', 'vxlan', 'id', '9', 'dstport', '4789', 'dev', 'uplink');
    const links = new LinkReconciler(ns.exec, { owned: ['raven0', 'raven-old'] });
    await createBridge(ns, 'raven-old');
    const desired: LinkSpec[] = [vxlan, { name: 'raven-wg0', kind: 'adopt', mtu: 1380, up: true }];

    expect(await reconcile(links, desired)).toEqual({ added: 1, removed: 1, changed: 1 });
    const [raven0] = await json<Array<{ mtu: number; flags: string[]; linkinfo: { info_data: Record<string, unknown> } }>>('-d', 'link', 'show', 'raven0');
    expect(raven0?.mtu).toBe(1450);
    expect(raven0?.flags).toContain('UP');
    expect(raven0?.linkinfo.info_data).toMatchObject({ id: 200, port: 4472, local: '198.18.0.1', link: 'uplink', learning: false });
    const [wg] = await json<Array<{ mtu: number; flags: string[] }>>('link', 'show', 'raven-wg0');
    expect(wg).toMatchObject({ mtu: 1380, flags: expect.arrayContaining(['UP']) as unknown });
    expect(await reconcile(links, desired)).toEqual(NO_CHANGES);

    expect(await reconcile(links, [{ ...vxlan, vni: 201 }, desired[1]!])).toEqual({ added: 0, removed: 0, changed: 1 });
    expect(await ns.run('ip', '-d', 'link', 'show', 'raven0')).toContain('vxlan id 201');

    expect(await links.cleanup()).toEqual({ added: 0, removed: 1, changed: 0 });
    const names = (await json<Array<{ ifname: string }>>('link', 'show')).map((l) => l.ifname);
    expect(names).toEqual(expect.arrayContaining(['raven-wg0', 'vx-foreign', 'uplink']));
    expect(names).not.toContain('raven0');
    expect(await links.cleanup()).toEqual(NO_CHANGES);
  });

  it('fails with LinkNotFoundError for a missing adopted link after applying the rest', async () => {
    const links = new LinkReconciler(ns.exec, { owned: ['raven0'] });
    const error = await reconcile(links, [vxlan, { name: 'raven-wg0', kind: 'adopt', mtu: 1380 }]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LinkNotFoundError);
    expect(await ns.run('ip', 'link', 'show', 'raven0')).toContain('raven0');
  });

  it('manages all addresses of owned devices only', async () => {
    await createBridge(ns, 'raven-wg0', { addresses: ['10.99.0.1/24'] });
    const addresses = new AddressReconciler(ns.exec, { devices: ['raven-wg0'] });
    const desired = [{ dev: 'raven-wg0', address: '10.250.0.1/32' }, { dev: 'raven-wg0', address: 'fd00:250::1/64' }];
    expect(await reconcile(addresses, desired)).toEqual({ added: 2, removed: 1, changed: 0 });
    expect(await reconcile(addresses, desired)).toEqual(NO_CHANGES);
    const [info] = await json<Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>>('address', 'show', 'raven-wg0');
    expect(info?.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toEqual(expect.arrayContaining(['10.250.0.1/32', 'fd00:250::1/64']));
    expect(await ns.run('ip', 'address', 'show', 'uplink')).toContain('198.18.0.1/24');
    expect(await addresses.cleanup()).toEqual({ added: 0, removed: 2, changed: 0 });
  });
});

describe('routes and rules', () => {
  const routes: RouteSpec[] = [
    { table: 9027, dst: '10.2.0.0/24', via: '198.18.0.2', dev: 'uplink' },
    { table: 9027, dst: '10.3.0.0/24', via: '10.250.0.3', dev: 'uplink', onlink: true, mtu: 1400 },
    { table: 9027, dst: '10.4.0.0/16', type: 'blackhole' },
    { table: 9027, dst: 'fd00:2::/64', via: '2001:db8::2', dev: 'uplink' },
    { table: 9028, dst: '0.0.0.0/0', via: '198.18.0.254', dev: 'uplink', src: '198.18.0.1' },
    { table: 9028, dst: '::/0', via: '2001:db8::fe', dev: 'uplink', metric: 10 },
  ];

  it('converges IPv4 and IPv6 routes in owned tables and leaves other tables alone', async () => {
    await ns.run('ip', 'route', 'add', '10.9.0.0/16', 'via', '198.18.0.9', 'table', '9999');
    await ns.run('ip', 'route', 'add', '10.8.0.0/16', 'via', '198.18.0.9', 'table', '9027');
    const reconciler = new RouteReconciler(ns.exec, { tables: [9027, 9028] });
    expect(await reconcile(reconciler, routes)).toEqual({ added: 6, removed: 1, changed: 0 });
    expect(await reconcile(reconciler, routes)).toEqual(NO_CHANGES);
    expect(await ns.run('ip', '-6', 'route', 'show', 'table', '9028')).toContain('default via 2001:db8::fe dev uplink metric 10');
    expect(await ns.run('ip', 'route', 'show', 'table', '9027')).toMatch(/10\.3\.0\.0\/24 via 10\.250\.0\.3 dev uplink onlink .*mtu 1400/);

    const moved = routes.map((r) => (r.dst === '10.2.0.0/24' ? { ...r, via: '198.18.0.3' } : r));
    expect(await reconcile(reconciler, moved)).toEqual({ added: 0, removed: 0, changed: 1 });
    expect(await ns.run('ip', 'route', 'show', 'table', '9027', '10.2.0.0/24')).toContain('via 198.18.0.3');

    expect(await reconciler.cleanup()).toEqual({ added: 0, removed: 6, changed: 0 });
    expect(await ns.run('ip', 'route', 'show', 'table', '9999')).toContain('10.9.0.0/16');
    expect(await ns.run('ip', 'route', 'show', 'table', '9027')).toBe('');
    expect(await reconciler.cleanup()).toEqual(NO_CHANGES);
  });

  it('converges policy rules of both families, removing stale owned rules and sparing foreign ones', async () => {
    await ns.run('ip', 'rule', 'add', 'fwmark', '0x40', 'lookup', '9027', 'priority', '100');
    await ns.run('ip', 'rule', 'add', 'fwmark', '0x80', 'lookup', '9028', 'priority', '100');
    await ns.run('ip', 'rule', 'add', 'fwmark', '0x40', 'lookup', '500', 'priority', '100');
    const rules: RuleSpec[] = [
      { priority: 100, fwmark: 0x40, table: 9027 },
      { priority: 101, fwmark: 0x40, fwmask: 0xff40, from: '10.1.0.0/16', iif: 'uplink', table: 9028 },
      { priority: 100, fwmark: 0x40, table: 9027, family: 6 },
    ];
    const reconciler = new RuleReconciler(ns.exec, { priorities: [100, 101], tables: [9027, 9028] });
    expect(await reconcile(reconciler, rules)).toEqual({ added: 2, removed: 1, changed: 0 });
    expect(await reconcile(reconciler, rules)).toEqual(NO_CHANGES);
    expect(await ns.run('ip', 'rule', 'show', 'priority', '101')).toContain('from 10.1.0.0/16 fwmark 0x40/0xff40 iif uplink lookup 9028');
    expect(await ns.run('ip', '-6', 'rule', 'show', 'priority', '100')).toContain('fwmark 0x40 lookup 9027');
    expect(await reconciler.cleanup()).toEqual({ added: 0, removed: 3, changed: 0 });
    expect((await ns.run('ip', 'rule', 'show', 'priority', '100')).trim()).toBe('100:\tfrom all fwmark 0x40 lookup 500');
  });
});

describe('neighbours, fdb and sysctls', () => {
  it('keeps permanent neighbour and FDB entries of owned devices in sync', async () => {
    await new LinkReconciler(ns.exec, { owned: ['raven0'] }).apply({
      create: [{ name: 'raven0', kind: 'vxlan', vni: 200, port: 4472, local: '198.18.0.1', dev: 'uplink', up: true }],
      recreate: [], update: [], remove: [], missingAdopted: [],
    });
    await ns.run('ip', 'neigh', 'replace', '198.18.0.50', 'lladdr', '02:00:00:00:00:50', 'dev', 'uplink', 'nud', 'permanent');
    const neighbours = new NeighbourReconciler(ns.exec, { devices: ['raven0'] });
    const fdb = new FdbReconciler(ns.exec, { devices: ['raven0'] });
    const neighbourState = [
      { dev: 'raven0', address: '10.250.0.2', lladdr: '02:00:0a:fa:00:02' },
      { dev: 'raven0', address: 'fd00:250::2', lladdr: '02:00:0a:fa:00:02' },
    ];
    const fdbState = [
      { dev: 'raven0', mac: '02:00:0a:fa:00:02', dst: '198.18.0.2' },
      { dev: 'raven0', mac: '00:00:00:00:00:00', dst: '198.18.0.2' },
      { dev: 'raven0', mac: '00:00:00:00:00:00', dst: '198.18.0.3' },
    ];
    expect(await reconcile(neighbours, neighbourState)).toEqual({ added: 2, removed: 0, changed: 0 });
    expect(await reconcile(fdb, fdbState)).toEqual({ added: 3, removed: 0, changed: 0 });
    expect(await reconcile(neighbours, neighbourState)).toEqual(NO_CHANGES);
    expect(await reconcile(fdb, fdbState)).toEqual(NO_CHANGES);

    const moved = [{ dev: 'raven0', mac: '02:00:0a:fa:00:02', dst: '198.18.0.4' }, fdbState[1]!];
    expect(await reconcile(fdb, moved)).toEqual({ added: 0, removed: 1, changed: 1 });
    expect(await ns.run('bridge', 'fdb', 'show', 'dev', 'raven0')).toContain('02:00:0a:fa:00:02 dst 198.18.0.4 self permanent');
    expect(await reconcile(neighbours, [{ ...neighbourState[0]!, lladdr: '02:00:0a:fa:00:09' }])).toEqual({ added: 0, removed: 1, changed: 1 });
    expect(await ns.run('ip', 'neigh', 'show', 'dev', 'raven0')).toBe('10.250.0.2 lladdr 02:00:0a:fa:00:09 PERMANENT \n');

    expect(await neighbours.cleanup()).toEqual({ added: 0, removed: 1, changed: 0 });
    expect(await fdb.cleanup()).toEqual({ added: 0, removed: 2, changed: 0 });
    expect(await ns.run('ip', 'neigh', 'show', 'dev', 'uplink')).toContain('198.18.0.50');
  });

  it('reads and writes sysctls inside the namespace with one command each way', async () => {
    const rootForwarding = await new HostExec().run('sysctl', ['-n', 'net.ipv4.ip_forward']);
    const sysctls = new SysctlReconciler(ns.exec, { keys: ['net.ipv4.ip_forward', 'net/ipv4/conf/uplink/rp_filter', 'net.ipv4.ip_local_port_range'] });
    const desired = { 'net.ipv4.ip_forward': 1, 'net/ipv4/conf/uplink/rp_filter': 2, 'net.ipv4.ip_local_port_range': '20000 40000' };
    expect(await reconcile(sysctls, desired)).toEqual({ added: 0, removed: 0, changed: 3 });
    expect(await reconcile(sysctls, desired)).toEqual(NO_CHANGES);
    expect(await ns.run('sysctl', '-n', 'net.ipv4.conf.uplink.rp_filter', 'net.ipv4.ip_local_port_range')).toBe('2\n20000\t40000\n');
    expect(await new HostExec().run('sysctl', ['-n', 'net.ipv4.ip_forward'])).toEqual(rootForwarding);
  });
});
