import { performance } from 'node:perf_hooks';
import { createNetns, createVethPair, type Netns } from '@raven/testbed';
import { afterEach, describe, expect, it } from 'vitest';
import {
  IpsetReconciler, IptablesReconciler, LinkReconciler, RouteReconciler, RuleReconciler, ipsetTypeSupported, reconcile, sumSummaries,
  type ApplySummary, type Exec, type IpsetSpec, type IpsetType,
} from '../src/index.ts';

const SUBNETS = 5000;
const LOCAL_POD_CIDR = '10.1.0.0/16';

/** Remote pod subnets 10.100.0.0/24, 10.100.1.0/24, ...; `generation` shifts a tenth of them to new prefixes. */
function remoteSubnets(generation: number): string[] {
  return Array.from({ length: SUBNETS }, (_, i) => {
    const index = i < SUBNETS / 10 ? i + generation * SUBNETS : i;
    return `10.${100 + (index >> 8)}.${index & 255}.0/24`;
  });
}

/**
 * The tunnel agent's job for one gateway: plan the desired state from the remote subnets (here: trivially) and apply it
 * with one reconcile per subsystem.
 */
async function planAndApply(exec: Exec, subnets: string[], skipNatType: IpsetType): Promise<ApplySummary> {
  const routes = new RouteReconciler(exec, { tables: [9027] });
  const rules = new RuleReconciler(exec, { priorities: [100], tables: [9027] });
  const ipsets = new IpsetReconciler(exec, { sets: ['raven-mark-set', 'raven-skip-nat-set'] });
  const iptables = new IptablesReconciler(exec, 4, {
    chains: [{ table: 'mangle', name: 'RAVEN-MARK-CHAIN' }, { table: 'nat', name: 'RAVEN-POSTROUTING' }],
  });
  const skipNatMatch = skipNatType === 'hash:net,net' ? 'src,dst' : 'dst';
  const sets: IpsetSpec[] = [
    { name: 'raven-mark-set', type: 'hash:net', family: 'inet', members: subnets },
    {
      name: 'raven-skip-nat-set',
      type: skipNatType,
      family: 'inet',
      members: skipNatType === 'hash:net,net' ? subnets.map((dst) => `${LOCAL_POD_CIDR},${dst}`) : subnets,
    },
  ];
  // Routing and ipsets are independent; iptables rules reference the sets, so they go last.
  const [routing, memberships] = await Promise.all([
    (async () =>
      sumSummaries(
        await reconcile(routes, subnets.map((dst) => ({ table: 9027, dst, via: '10.250.0.2', dev: 'raven0', onlink: true }))),
        await reconcile(rules, [{ priority: 100, fwmark: 0x40, table: 9027 }]),
      ))(),
    reconcile(ipsets, sets),
  ]);
  return sumSummaries(
    routing,
    memberships,
    await reconcile(iptables, {
      chains: [
        { table: 'mangle', name: 'RAVEN-MARK-CHAIN', rules: ['-m set --match-set raven-mark-set dst -j MARK --set-xmark 0x40/0x40'] },
        { table: 'nat', name: 'RAVEN-POSTROUTING', rules: [`-m set --match-set raven-skip-nat-set ${skipNatMatch} -j ACCEPT`] },
      ],
      jumps: [
        { table: 'mangle', from: 'PREROUTING', to: 'RAVEN-MARK-CHAIN', position: 'last' },
        { table: 'mangle', from: 'OUTPUT', to: 'RAVEN-MARK-CHAIN', position: 'last' },
        { table: 'nat', from: 'POSTROUTING', to: 'RAVEN-POSTROUTING', position: 'first' },
      ],
    }),
  );
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const result = await fn();
  return [result, performance.now() - start];
}

describe('5,000 remote subnets', () => {
  let ns: Netns | undefined;
  afterEach(async () => {
    await ns?.destroy();
  });

  it('plans and applies routes, mark set and skip-nat set in one batch each, then converges to no changes', async () => {
    ns = await createNetns('rv-scale');
    await createVethPair({ ns, name: 'uplink', addresses: ['198.18.0.1/24'] }, { ns, name: 'peer' });
    await reconcile(new LinkReconciler(ns.exec, { owned: ['raven0'] }), [
      { name: 'raven0', kind: 'vxlan', vni: 200, port: 4472, local: '198.18.0.1', dev: 'uplink', up: true },
    ]);
    const netnet = await ipsetTypeSupported(ns.exec, 'hash:net,net', 'inet');
    const skipNatType: IpsetType = netnet ? 'hash:net,net' : 'hash:net';

    const [initial, initialMs] = await timed(() => planAndApply(ns!.exec, remoteSubnets(0), skipNatType));
    // routes + rule + 2 sets with their members + 2 chains and 3 jumps
    expect(initial).toEqual({ added: SUBNETS + 1 + 2 + 2 * SUBNETS + 5, removed: 0, changed: 0 });
    const noopMs: number[] = [];
    const churnMs: number[] = [];
    for (let generation = 1; generation <= 3; generation++) {
      const [update, updateMs] = await timed(() => planAndApply(ns!.exec, remoteSubnets(generation), skipNatType));
      expect(update).toEqual({ added: 3 * (SUBNETS / 10), removed: 3 * (SUBNETS / 10), changed: 0 });
      const [noop, ms] = await timed(() => planAndApply(ns!.exec, remoteSubnets(generation), skipNatType));
      expect(noop).toEqual({ added: 0, removed: 0, changed: 0 });
      churnMs.push(updateMs);
      noopMs.push(ms);
    }
    const routes = (await ns.run('ip', 'route', 'show', 'table', '9027')).trim().split('\n');
    expect(routes).toHaveLength(SUBNETS);
    expect(routes).toContain('10.158.152.0/24 via 10.250.0.2 dev raven0 onlink ');
    for (const set of ['raven-mark-set', 'raven-skip-nat-set']) {
      expect(await ns.run('ipset', 'list', '-t', set)).toContain(`Number of entries: ${SUBNETS}`);
    }
    const ipsetMembers = await ns.run('ipset', 'list', '-o', 'save', 'raven-mark-set');
    expect(ipsetMembers).toContain('add raven-mark-set 10.158.152.0/24');
    expect(ipsetMembers).not.toContain('add raven-mark-set 10.100.0.0/24\n');

    const skipNat = netnet ? 'hash:net,net pairs' : 'hash:net stand-in (this kernel lacks hash:net,net)';
    console.log(
      `[netlink scale] ${SUBNETS} subnets → ${SUBNETS} routes + ${SUBNETS} mark-set members + ${SUBNETS} skip-nat members (${skipNat}); ` +
        `plan+apply: initial ${initialMs.toFixed(0)} ms; 10% churn ${churnMs.map((ms) => ms.toFixed(0)).join('/')} ms; ` +
        `no-op ${noopMs.map((ms) => ms.toFixed(0)).join('/')} ms (runs share this 2-core machine with other tests)`,
    );
  });
});
