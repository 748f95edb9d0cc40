import { describe, expect, it } from 'vitest';
import { benchmarkScript, parseBenchmark } from '../src/benchmark.ts';
import { pickSite } from '../src/benchmark-command.ts';
import { UsageError } from '../src/exit.ts';
import { chooseProbeSites, domainService, parseProberResults, proberScript, ProbeInputError, responderPod, type CheckResult, type ProbeCheck, type ProbeSite } from '../src/probes.ts';
import { explainFailures, planChecks, verifyRows, type L7Outcome, type ProberOutcome, type VerifyRow } from '../src/verify.ts';
import { gateway, node, walkthrough } from './fixtures.ts';

const sites = chooseProbeSites(walkthrough());
const podIPs = new Map(sites.map((s, i) => [s.node, `10.244.${i}.5`]));
const serviceIPs = new Map([['gw-cloud', '10.96.0.10'], ['gw-hangzhou', '10.96.0.11'], ['gw-qingdao', '10.96.0.12']]);
const plan = planChecks(sites, { podIPs, serviceIPs });

describe('chooseProbeSites', () => {
  it('takes each domain\'s active gateway and one other Ready member', () => {
    expect(sites).toEqual([
      { node: 'cloud-1', gateway: 'gw-cloud', role: 'gateway' }, { node: 'cloud-2', gateway: 'gw-cloud', role: 'member' },
      { node: 'hz-1', gateway: 'gw-hangzhou', role: 'gateway' }, { node: 'hz-2', gateway: 'gw-hangzhou', role: 'member' },
      { node: 'qd-1', gateway: 'gw-qingdao', role: 'gateway' }, { node: 'qd-2', gateway: 'gw-qingdao', role: 'member' },
    ]);
  });

  it.each([
    ['a member that is no endpoint candidate first', [node('a', 'g'), node('b', 'g'), node('c', 'g')], [{ nodeName: 'a' }, { nodeName: 'b' }], ['a:gateway', 'c:member']],
    ['a standby when every member is a candidate', [node('a', 'g'), node('b', 'g')], [{ nodeName: 'a' }, { nodeName: 'b' }], ['a:gateway', 'b:member']],
    ['no NotReady node', [node('a', 'g', { ready: 'False' }), node('b', 'g'), node('c', 'g', { ready: 'Unknown' })], [{ nodeName: 'a' }], ['b:member']],
    ['no node of another Gateway', [node('a', 'g'), node('x', 'other')], [{ nodeName: 'a' }], ['a:gateway']],
  ])('%s', (_name, nodes, endpoints, expected) => {
    const gw = gateway('g', { endpoints, active: [{ nodeName: 'a' }] });
    expect(chooseProbeSites({ gateways: [gw], nodes }).map((s) => `${s.node}:${s.role}`)).toEqual(expected);
  });
});

describe('planChecks', () => {
  it('pings every other probe, sends large pings and ClusterIP GETs to the other domains only', () => {
    const hz2 = plan.get('hz-2')!;
    expect(hz2.filter((c) => c.kind === 'pod').map((c) => c.to)).toEqual(['cloud-1', 'cloud-2', 'hz-1', 'qd-1', 'qd-2']);
    expect(hz2.filter((c) => c.kind === 'large').map((c) => c.to)).toEqual(['cloud-1', 'cloud-2', 'qd-1', 'qd-2']);
    expect(hz2.filter((c) => c.kind === 'service').map((c) => c.to)).toEqual(['gw-cloud', 'gw-qingdao']);
    expect(new Set(hz2.map((c) => c.id)).size).toBe(hz2.length);
  });

  it('skips a probe without an address', () => {
    const partial = planChecks(sites, { podIPs: new Map([...podIPs].filter(([n]) => n !== 'qd-2')), serviceIPs });
    expect(partial.get('hz-2')!.some((c) => c.to === 'qd-2')).toBe(false);
  });
});

describe('proberScript and manifests refuse what would reach a shell or a name unchecked', () => {
  it.each(['10.0.0.1; reboot', '$(id)', 'example.com', '10.0.0.1 -f'])('address %j', (address) => {
    expect(() => proberScript([{ id: 0, kind: 'pod', to: 'x', address }])).toThrow(ProbeInputError);
  });

  it('renders IP literals, IPv6 bracketed in URLs', () => {
    const script = proberScript([{ id: 0, kind: 'pod', to: 'a', address: '10.0.0.1' }, { id: 1, kind: 'large', to: 'a', address: '10.0.0.1' }, { id: 2, kind: 'service', to: 'g', address: 'fd00::1' }]);
    expect(script).toContain('run 0 ping -c 2 -W 3 10.0.0.1 &');
    expect(script).toContain('run 1 ping -c 2 -W 3 -s 3000 10.0.0.1 &');
    expect(script).toContain('run 2 get http://[fd00::1]:8080/ &');
  });

  it.each([['node', { node: 'a b', gateway: 'g', role: 'member' }], ['Gateway', { node: 'a', gateway: 'G;x', role: 'member' }]] as const)('a bad %s name', (_what, site) => {
    expect(() => responderPod(site as ProbeSite, { namespace: 'n', image: 'busybox', runId: 'r' })).toThrow(ProbeInputError);
  });

  it('names Services as DNS labels, whatever dots a Gateway name has', () => {
    expect((domainService('gw.hz.example', { namespace: 'n', image: 'busybox', runId: 'abc' }) as { metadata: { name: string } }).metadata.name).toBe('raven-probe-abc-gw-hz-example');
  });
});

describe('parseProberResults', () => {
  const checks: ProbeCheck[] = [
    { id: 0, kind: 'pod', to: 'a', address: '10.0.0.1' }, { id: 1, kind: 'large', to: 'a', address: '10.0.0.1' },
    { id: 2, kind: 'service', to: 'g', address: '10.96.0.1' }, { id: 3, kind: 'service', to: 'g', address: '10.96.0.1' },
  ];
  it.each([
    ['a ping with its RTT', '0 0 round-trip min/avg/max = 0.5/1.25/2.0 ms', 0, { ok: true, rttMs: 1.25 }],
    ['a lost ping', '1 1 2 packets transmitted 0 packets received 100% packet loss', 1, { ok: false, detail: '2 packets transmitted 0 packets received 100% packet loss' }],
    ['a Service answering with its node', '2 0 hz-1', 2, { ok: true, answeredBy: 'hz-1' }],
    ['a Service answering something else', '3 0 <html>', 3, { ok: false, detail: '<html>' }],
  ])('%s', (_name, message, id, expected) => {
    expect(parseProberResults(message, checks).get(id)).toMatchObject(expected);
  });

  it('ignores lines that do not fit and ids it did not ask for', () => {
    const results = parseProberResults('garbage\n9 0 x\n0 0 round-trip min/avg/max = 1/2/3 ms\n', checks);
    expect([...results.keys()]).toEqual([0]);
  });
});

/** A verify run's rows where every check passed, except those `fail` names (`from>to:kind`). */
function rowsWith(fail: readonly string[], l7Fail: readonly string[] = []): VerifyRow[] {
  const outcomes = new Map<string, ProberOutcome>();
  for (const site of sites) {
    const results = new Map<number, CheckResult>();
    for (const check of plan.get(site.node)!) {
      const ok = !fail.includes(`${site.node}>${check.to}:${check.kind}`) && !fail.includes(`${site.node}>*`) && !fail.includes(`*>${check.to}:${check.kind}`);
      results.set(check.id, { id: check.id, ok, detail: ok ? '' : '100% packet loss', ...(ok && check.kind !== 'service' ? { rttMs: 1 } : {}), ...(ok && check.kind === 'service' ? { answeredBy: 'x' } : {}) });
    }
    outcomes.set(site.node, { results });
  }
  const l7: L7Outcome[] = ['hz-1', 'hz-2', 'qd-1', 'qd-2'].map((n) => ({ node: n, gateway: n.startsWith('hz') ? 'gw-hangzhou' : 'gw-qingdao', ok: !l7Fail.includes(n), detail: l7Fail.includes(n) ? '503 Service Unavailable' : 'ok' }));
  return verifyRows(sites, plan, outcomes, l7);
}

describe('explainFailures', () => {
  const gateways = walkthrough().gateways;
  const crossFrom = (n: string) => plan.get(n)!.filter((c) => c.kind === 'service' || !c.to.startsWith(n.slice(0, 2))).map((c) => `${n}>${c.to}:${c.kind}`);

  it('nothing to explain when everything passed', () => {
    expect(explainFailures(rowsWith([]), sites, gateways)).toEqual([]);
  });

  it.each([
    ['one node cut off while its neighbour works (and the others cannot reach it)', [...crossFrom('hz-2'), ...['cloud-1', 'cloud-2', 'qd-1', 'qd-2'].flatMap((n) => [`${n}>hz-2:pod`, `${n}>hz-2:large`])], /^hz-2 \(member of gw-hangzhou\) reaches no other domain while its neighbour does/],
    ['large packets lost where small ones pass', ['hz-2>qd-1:large', 'hz-2>qd-2:large'], /^gw-hangzhou -> gw-qingdao: small pings pass but 3000-byte ones are lost/],
    ['a ClusterIP unreachable while the pods answer', ['hz-2>gw-qingdao:service'], /^the ClusterIP of gw-qingdao's probe Service is unreachable from hz-2 while gw-qingdao's pods answer/],
  ])('%s', (_name, fail, problem) => {
    const explanations = explainFailures(rowsWith(fail), sites, gateways);
    expect(explanations).toHaveLength(1);
    expect(explanations[0]!.problem).toMatch(problem);
    expect(explanations[0]!.rows).toBe(rowsWith(fail).filter((r) => r.state !== 'ok').length);
  });

  it('a whole domain pair down, with what the Gateways report about the tunnel', () => {
    const fail = ['hz-1', 'hz-2'].flatMap((n) => plan.get(n)!.filter((c) => c.to.startsWith('qd') || c.to === 'gw-qingdao').map((c) => `${n}>${c.to}:${c.kind}`))
      .concat(['qd-1', 'qd-2'].flatMap((n) => plan.get(n)!.filter((c) => c.to.startsWith('hz') || c.to === 'gw-hangzhou').map((c) => `${n}>${c.to}:${c.kind}`)));
    const broken = walkthrough().gateways.map((g) => g.metadata.name !== 'gw-hangzhou' ? g : { ...g, status: { ...g.status, connections: [{ gateway: 'gw-qingdao', nodeName: 'qd-1', status: 'Error' as const, statusMessage: 'no handshake for 180 s' }] } });
    const [explanation, ...rest] = explainFailures(rowsWith(fail), sites, broken);
    expect(rest).toEqual([]);
    expect(explanation!.problem).toBe('no pod of gw-hangzhou reaches a pod of gw-qingdao: gw-hangzhou reports its connection to gw-qingdao as Error (no handshake for 180 s)');
    expect(explanation!.rows).toBe(fail.length);
  });

  it('an L7 call that failed names the node and the proxy path to check', () => {
    const [explanation] = explainFailures(rowsWith([], ['qd-2']), sites, gateways);
    expect(explanation!.problem).toBe('the apiserver could not reach the kubelet of qd-2 by name (503 Service Unavailable)');
    expect(explanation!.fix).toContain('proxy heartbeats of gw-qingdao');
  });

  it('a probe that reported nothing', () => {
    const rows = verifyRows(sites, plan, new Map(sites.map((s) => [s.node, s.node === 'qd-2' ? { failure: 'ErrImagePull: busybox not found' } : { results: new Map() }])), []);
    const explanations = explainFailures(rows.filter((r) => r.from === 'qd-2'), sites, gateways);
    expect(explanations.map((e) => e.problem)).toEqual(['the probe on qd-2 reported nothing: ErrImagePull: busybox not found']);
  });
});

describe('benchmark', () => {
  const from: ProbeSite = { node: 'qd-2', gateway: 'gw-qingdao', role: 'member' };
  const to: ProbeSite = { node: 'hz-2', gateway: 'gw-hangzhou', role: 'member' };
  const plan = { address: '10.244.1.5', sizeMiB: 64, streams: 2, pings: 20, timeoutSeconds: 60 };

  it('refuses a non-IP address and non-positive sizes before rendering the script', () => {
    expect(() => benchmarkScript({ ...plan, address: '$(id)' })).toThrow(ProbeInputError);
    expect(() => benchmarkScript({ ...plan, streams: 0 })).toThrow(ProbeInputError);
    expect(benchmarkScript(plan)).toContain('"http://10.244.1.5:8080/cgi-bin/zero?32"');
  });

  it.each([
    ['a full transfer', 'ping round-trip min/avg/max = 0.5/1.5/3.0 ms\ntime 100.00 102.00\nbytes 33554432\nbytes 33554432', { bytes: 67108864, expectedBytes: 67108864, rttMs: { min: 0.5, avg: 1.5, max: 3 } }],
    ['a stream cut short', 'ping round-trip min/avg/max = 0.5/1.5/3.0 ms\ntime 100.00 102.00\nbytes 33554432\nbytes 100', { problem: 'received 33554532 of 67108864 bytes (a stream failed or timed out)' }],
    ['no ping answered', 'ping 20 packets transmitted 0 packets received 100% packet loss\ntime 1.00 2.00\nbytes 33554432\nbytes 33554432', { problem: 'no ping answered (20 packets transmitted 0 packets received 100% packet loss)' }],
    ['no timing', '', { mbitPerSecond: 0 }],
  ])('%s', (_name, message, expected) => {
    expect(parseBenchmark(message, plan, from, to)).toMatchObject(expected);
  });

  it('computes throughput from the receiver\'s clock', () => {
    const r = parseBenchmark('ping round-trip min/avg/max = 0.5/1.5/3.0 ms\ntime 100.00 102.00\nbytes 33554432\nbytes 33554432', plan, from, to);
    expect(r.problem).toBeUndefined();
    expect(r.seconds).toBeCloseTo(2, 6);
    expect(r.mbitPerSecond).toBeCloseTo(268.435456, 3);
  });

  it('picks a member of each named Gateway, a named node, or refuses an unknown name', () => {
    expect(pickSite(sites, 'gw-qingdao', undefined, 'from')).toEqual({ node: 'qd-2', gateway: 'gw-qingdao', role: 'member' });
    expect(pickSite(sites, 'hz-1', undefined, 'to').node).toBe('hz-1');
    expect(pickSite(sites, undefined, sites[0], 'to').gateway).not.toBe(sites[0]!.gateway);
    expect(() => pickSite(sites, 'nope', undefined, 'from')).toThrow(UsageError);
  });
});
