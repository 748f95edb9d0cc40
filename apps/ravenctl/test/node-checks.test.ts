import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ApiError } from '@raven/controller-kit';
import { pskFingerprint, type AgentDiagnose } from '@raven/api-types';
import { renderReport, report } from '../src/diagnose-command.ts';
import type { Finding } from '../src/diagnose.ts';
import { agentProxyPath, kubeProxyMode, parseAgentAnswer, unavailableReason, type AgentProbe, type Environment } from '../src/environment.ts';
import { checkAgents, checkEnvironment, detectCni } from '../src/node-checks.ts';
import { walkthrough } from './fixtures.ts';

const fixture = (): unknown => JSON.parse(readFileSync(new URL('./fixtures/agent-diagnose-gateway.json', import.meta.url), 'utf8'));
const gatewayReport = (): AgentDiagnose => {
  const parsed = parseAgentAnswer(fixture());
  if (!('report' in parsed)) throw new Error(parsed.unavailable);
  return parsed.report;
};
const healthy = (node: string): AgentDiagnose => ({ ...gatewayReport(), node, mtu: { underlayDevice: 'eth0', underlay: 1500, vxlan: 1450, tunnel: 1420 }, subsystems: [], peers: [] });
const agent = (report: AgentDiagnose, pod = `raven-tunnel-agent-${report.node}`): AgentProbe => ({ pod, node: report.node, report });
const env = (extra: Partial<Environment> = {}): Environment => ({ kubeProxy: { configMap: true, mode: '' }, daemonSets: [], agents: [], forbidden: [], ...extra });
const brief = (f: Finding) => `${f.severity} ${f.check} ${f.object}`;

describe('parsing what an agent answers', () => {
  it('accepts the fixture report', () => {
    expect(gatewayReport()).toMatchObject({ node: 'hz-1', mtu: { tunnel: 1370 }, peers: [{ gateway: 'gw-cloud', handshakeAgeSeconds: 412.5 }, { relayedVia: 'gw-cloud' }] });
  });

  it.each<[string, unknown, RegExp]>([
    ['an HTML error page turned JSON string', '<html>bad gateway</html>', /not a tunnel-agent diagnose report .*first at the top/],
    ['another kind', { ...(fixture() as object), kind: 'Other' }, /first at kind/],
    ['a newer version', { ...(fixture() as object), version: 2 }, /first at version/],
    ['a negative drift count', (() => { const f = fixture() as AgentDiagnose; f.subsystems[0]!.driftRepairs = -1; return f; })(), /first at subsystems\.0\.driftRepairs/],
    ['an oversized string', { ...(fixture() as object), lastError: 'x'.repeat(5000) }, /first at lastError/],
  ])('refuses %s', (_name, raw, why) => {
    const parsed = parseAgentAnswer(raw);
    expect('unavailable' in parsed && parsed.unavailable).toMatch(why);
  });

  it('says why an agent could not be asked', () => {
    expect(unavailableReason(new ApiError(403, 'Forbidden', 'no', 'GET', '/x'))).toMatch(/may not use pods\/proxy/);
    expect(unavailableReason(new ApiError(404, 'NotFound', 'no', 'GET', '/x'))).toMatch(/no \/debug\/diagnose there/);
    expect(unavailableReason(new ApiError(503, 'ServiceUnavailable', 'dial tcp: refused', 'GET', '/x'))).toBe("the apiserver's pod proxy answered 503 ServiceUnavailable");
    expect(unavailableReason(new Error('GET /x: request timed out'))).toBe('GET /x: request timed out');
  });

  it('builds the pod-proxy path, escaping the pod name', () => {
    expect(agentProxyPath('kube-system', 'raven-tunnel-agent-abc', 10275)).toBe('/api/v1/namespaces/kube-system/pods/raven-tunnel-agent-abc:10275/proxy/debug/diagnose');
    expect(agentProxyPath('kube-system', 'a/../b', 1)).toContain('/pods/a%2F..%2Fb:1/');
  });
});

describe('checkAgents', () => {
  it('turns drift, a stale handshake and a stale L3 view into findings with one-line fixes', () => {
    const s = walkthrough();
    const r = gatewayReport();
    r.l3Enabled = false;
    const { findings, notes } = checkAgents(s, { agents: [agent(r), agent(healthy('cloud-1'))] }, true);
    expect(findings.map(brief)).toEqual(['warning agent-config node/hz-1', 'warning kernel-drift node/hz-1', 'error handshake node/hz-1']);
    const drift = findings.find((f) => f.check === 'kernel-drift')!;
    expect(drift.message).toBe('node hz-1: route 10.244.0.0/24 table 9027 via 10.0.0.1 was missing (repaired 3 time(s) in the last hour)');
    expect(drift.fix).toMatch(/^check for other software flushing routes .* on hz-1$/);
    expect(findings.find((f) => f.check === 'handshake')!.message).toMatch(/handshake with gw-cloud \(cloud-1\) was 413s ago \(sessions expire after 180s\): the tunnel is down/);
    expect(notes[0]).toEqual({ topic: 'agents', message: '2 of 2 tunnel-agent(s) answered' });
    for (const f of findings) expect(f.fix).not.toContain('\n');
  });

  it.each<{ name: string; edit: (r: AgentDiagnose) => void; want: string[]; message?: RegExp }>([
    { name: 'a healthy agent', edit: (r) => { r.subsystems = []; r.peers = []; }, want: [] },
    { name: 'a failed reconcile', edit: (r) => { r.subsystems = []; r.peers = []; r.ready = false; r.lastError = 'Node hz-1 has no InternalIP yet'; }, want: ['error agent-reconcile node/hz-1'], message: /not ready: Node hz-1 has no InternalIP yet/ },
    { name: 'a subsystem that failed to apply', edit: (r) => { r.peers = []; r.subsystems = [{ name: 'iptables4', verified: true, driftRepairs: 0, error: 'iptables-restore failed' }]; }, want: ['error kernel-apply node/hz-1'] },
    { name: 'an unwanted rule appeared', edit: (r) => { r.peers = []; r.subsystems = [{ name: 'rules', verified: true, driftRepairs: 1, lastDrift: { at: r.generatedAt, added: 0, removed: 2, changed: 0, addedSample: [], removedSample: ['from all lookup 9027 pref 100'] } }]; }, want: ['warning kernel-drift node/hz-1'], message: /a policy rule Raven does not want appeared: from all lookup 9027 pref 100 \(and 1 more\)/ },
    { name: 'a peer without a tunnel', edit: (r) => { r.subsystems = []; r.peers = [{ gateway: 'gw-edge', nodeName: 'e1', reachable: false, unconfigured: 'the peer has not published its public key' }]; }, want: ['error tunnel-peer node/hz-1'] },
    { name: 'no handshake yet', edit: (r) => { r.subsystems = []; r.peers = [{ gateway: 'gw-edge', nodeName: 'e1', reachable: false }]; }, want: ['error handshake node/hz-1'], message: /no WireGuard handshake with gw-edge \(e1\) yet/ },
    { name: 'a fresh handshake', edit: (r) => { r.subsystems = []; r.peers = [{ gateway: 'gw-edge', nodeName: 'e1', reachable: true, handshakeAgeSeconds: 30 }]; }, want: [] },
    { name: 'libreswan reports no handshake ages', edit: (r) => { r.driver = 'libreswan'; r.subsystems = []; r.peers = [{ gateway: 'gw-edge', nodeName: 'e1', reachable: false }]; }, want: [] },
  ])('$name', ({ edit, want, message }) => {
    const r = gatewayReport();
    edit(r);
    const { findings } = checkAgents(walkthrough(), { agents: [agent(r)] }, true);
    expect(findings.map(brief)).toEqual(want);
    if (message) expect(findings[0]!.message).toMatch(message);
  });

  it("names the Pod's node, not the one the agent claims, and quotes what the agent reports in commands", () => {
    const r = gatewayReport();
    r.node = 'someone-else';
    r.subsystems = [];
    r.peers = [{ gateway: 'gw-x', nodeName: "x'; reboot #", reachable: false, unconfigured: 'no key' }];
    const [f] = checkAgents(walkthrough(), { agents: [{ pod: 'raven-tunnel-agent-abc', node: 'hz-1', report: r }] }, true).findings;
    expect(f).toMatchObject({ object: 'node/hz-1', check: 'tunnel-peer' });
    expect(f!.fix).toContain(`--field-selector 'spec.nodeName=x'\\''; reboot #'`);
  });

  it('reports a value every agent dropped once', () => {
    const a = healthy('hz-1');
    const b = healthy('hz-2');
    a.plan!.dropped = ['Gateway gw-x: endpoint e1 publicIP "nope" is not an IP'];
    b.plan!.dropped = [...a.plan!.dropped];
    const { findings } = checkAgents(walkthrough(), { agents: [agent(a), agent(b)] }, true);
    expect(findings.map(brief)).toEqual(['warning plan-dropped gateways']);
    expect(findings[0]!.message).toMatch(/on 2 node\(s\): Gateway gw-x/);
  });

  describe('the PSK each agent holds, by fingerprint', () => {
    const GOOD = pskFingerprint('the-cluster-psk');
    const OLD = pskFingerprint('an-old-psk');
    const holding = (node: string, psk: AgentDiagnose['psk']): AgentDiagnose => ({ ...healthy(node), ...(psk ? { psk } : {}) });
    const run = (secretFingerprint: string | undefined, reports: AgentDiagnose[]) => {
      const s = walkthrough();
      s.psk = secretFingerprint ? { secret: 'present', hasKey: true, fingerprint: secretFingerprint } : { secret: 'forbidden', hasKey: false };
      return checkAgents(s, { agents: reports.map((r) => agent(r)) }, true).findings.filter((f) => f.check === 'psk');
    };
    it.each<[string, string | undefined, AgentDiagnose[], string[], RegExp?]>([
      ['all agents hold the Secret\'s PSK', GOOD, [holding('hz-1', { source: 'secret', fingerprint: GOOD }), holding('qd-1', { source: 'file', fingerprint: GOOD })], []],
      ['an older agent that reports no PSK is not judged', GOOD, [holding('hz-1', undefined)], []],
      ['a --psk-file with another PSK', GOOD, [holding('hz-1', { source: 'file', fingerprint: OLD }), holding('qd-1', { source: 'secret', fingerprint: GOOD })],
        ['error psk node/hz-1'], /^node hz-1: tunnel-agent holds another PSK than secret\/raven-agent-secret \(fingerprint [0-9a-f]{16}, not [0-9a-f]{16}\) from its --psk-file: its tunnel handshakes with every peer fail$/],
      ['no PSK while the Secret has one', GOOD, [holding('hz-1', { source: 'secret', readError: 'secrets "raven-agent-secret" is forbidden' })],
        ['error psk node/hz-1'], /holds no PSK \(reading secret\/raven-agent-secret\), while secret\/raven-agent-secret has one: its tunnel/],
      ['a stale PSK the agent cannot refresh', GOOD, [holding('hz-1', { source: 'secret', fingerprint: OLD, readError: 'forbidden' })], ['error psk node/hz-1'], /another PSK/],
      ['the right PSK, but the agent cannot re-read it', GOOD, [holding('hz-1', { source: 'secret', fingerprint: GOOD, readError: 'ECONNRESET' })],
        ['warning psk node/hz-1'], /cannot read its PSK \(ECONNRESET\): it keeps the one it has/],
      ['Secret unreadable: the majority is the reference', undefined, [holding('hz-1', { source: 'secret', fingerprint: GOOD }), holding('hz-2', { source: 'secret', fingerprint: GOOD }), holding('qd-1', { source: 'file', fingerprint: OLD })],
        ['error psk node/qd-1'], /another PSK than 2 of 3 tunnel-agents/],
      ['Secret unreadable and no majority: one finding that lists who holds what', undefined, [holding('hz-1', { source: 'secret', fingerprint: GOOD }), holding('qd-1', { source: 'file', fingerprint: OLD })],
        ['error psk daemonset/raven-tunnel-agent'], /2 different PSKs \(by fingerprint\): [0-9a-f]{16}: (hz-1|qd-1); [0-9a-f]{16}: (hz-1|qd-1)$/],
      ['Secret unreadable and every agent agrees: nothing to say', undefined, [holding('hz-1', { source: 'secret', fingerprint: OLD }), holding('qd-1', { source: 'secret', fingerprint: OLD })], []],
    ])('%s', (_what, secret, reports, want, message) => {
      const found = run(secret, reports);
      expect(found.map(brief)).toEqual(want);
      if (message) expect(found[0]!.message).toMatch(message);
      for (const f of found) expect(f.fix).toBeTruthy();
    });

    it('names the fix by where the agent reads its PSK', () => {
      expect(run(GOOD, [holding('hz-1', { source: 'file', fingerprint: OLD })])[0]!.fix).toMatch(/--psk-file path, or drop --psk-file/);
      expect(run(GOOD, [holding('hz-1', { source: 'secret', fingerprint: OLD, readError: 'forbidden' })])[0]!.fix).toMatch(/auth can-i get secret\/raven-agent-secret --as=system:serviceaccount:kube-system:raven-tunnel-agent/);
      expect(run(GOOD, [holding('hz-1', { source: 'secret', fingerprint: OLD })])[0]!.fix).toMatch(/re-reads the Secret every 30 s/);
    });
  });

  it('unreachable agents, no agents, or not asking are notes, not errors', () => {
    const s = walkthrough();
    const down = checkAgents(s, { agents: [{ pod: 'raven-tunnel-agent-x', node: 'qd-1', unavailable: "the apiserver's pod proxy answered 503 ServiceUnavailable" }] }, true);
    expect(down.findings).toEqual([]);
    expect(down.notes.map((n) => n.message)).toEqual(['0 of 1 tunnel-agent(s) answered', "cannot ask tunnel-agent raven-tunnel-agent-x on qd-1: the apiserver's pod proxy answered 503 ServiceUnavailable"]);
    expect(checkAgents(s, { agents: [] }, true).notes[0]!.message).toMatch(/^no tunnel-agent Pods in kube-system: the per-node view .* was skipped$/);
    expect(checkAgents(s, { agents: [] }, false).notes[0]!.message).toMatch(/--skip-agents/);
  });
});

describe('checkEnvironment', () => {
  const messages = (e: Environment, topic: string) => checkEnvironment(walkthrough(), e).notes.filter((n) => n.topic === topic).map((n) => n.message);

  it.each<[string, string | undefined, RegExp]>([
    ['mode: ""\n', '', /^$/],
    ['apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\n', 'ipvs', /^ipvs$/],
    ['mode: nftables', 'nftables', /nftables/],
    ['{ not yaml', undefined, /^$/],
    ['', '', /^$/],
  ])('kube-proxy config.conf %j has mode %j', (text, mode) => {
    expect(kubeProxyMode(text)).toBe(mode);
  });

  it.each<[string, Environment['kubeProxy'], RegExp]>([
    ['default', { configMap: true, mode: '' }, /^kube-proxy mode: iptables \(the default\)$/],
    ['ipvs', { configMap: true, mode: 'ipvs' }, /^kube-proxy mode: ipvs; Raven is tested with iptables mode/],
    ['unreadable', { configMap: true }, /mode unknown/],
    ['absent', { configMap: false }, /^no kube-system\/kube-proxy ConfigMap/],
  ])('kube-proxy: %s', (_name, kubeProxy, want) => {
    expect(messages(env({ kubeProxy }), 'kube-proxy')[0]).toMatch(want);
  });

  it('detects the CNI from its DaemonSets, and warns about Cilium', () => {
    const ds = (namespace: string, name: string) => ({ namespace, name, args: [] });
    expect(detectCni([ds('kube-flannel', 'kube-flannel-ds'), ds('kube-system', 'calico-node'), ds('kube-system', 'kube-proxy'), ds('kube-system', 'cilium')]).map((c) => c.cni)).toEqual(['flannel', 'calico', 'cilium']);
    expect(messages(env({ daemonSets: [ds('kube-flannel', 'kube-flannel-ds')] }), 'cni')).toEqual(['CNI: flannel (kube-flannel/kube-flannel-ds)']);
    expect(messages(env(), 'cni')[0]).toMatch(/^no known CNI DaemonSet found/);
    const cilium = checkEnvironment(walkthrough(), env({ daemonSets: [ds('kube-system', 'cilium')] }));
    expect(cilium.findings.map(brief)).toEqual(['warning cni kube-system/cilium']);
    expect(cilium.findings[0]!.fix).toMatch(/bpf\.hostLegacyRouting=true/);
  });

  it('names nodes without a podCIDR unless Calico assigns blocks', () => {
    const s = walkthrough();
    s.nodes[2]!.podCIDRs = ['10.244.1.0/24'];
    s.nodes[3]!.podCIDRs = [];
    const cni = (e: Environment) => checkEnvironment(s, e).notes.filter((n) => n.topic === 'cni').map((n) => n.message);
    expect(cni(env())).toContainEqual(expect.stringMatching(/^1 node\(s\) have no spec\.podCIDR: hz-2 /));
    expect(cni(env({ daemonSets: [{ namespace: 'kube-system', name: 'calico-node', args: [] }] }))).toEqual(['CNI: calico (kube-system/calico-node)']);
  });

  it('says what it could not read, so "none found" is not taken for "none there"', () => {
    expect(messages(env({ forbidden: ['daemonsets in kube-system'] }), 'access')).toEqual(['cannot read daemonsets in kube-system with these credentials: the hints below may be incomplete']);
  });

  it('MTU: the agents\' figures when they answered, else the common 1500-byte underlay', () => {
    expect(messages(env(), 'mtu')).toEqual([expect.stringMatching(/on a 1500-byte underlay the WireGuard tunnel carries 1420 bytes \(-80\) and vxlan 1450 \(-50\)/)]);
    const libreswan = env({ daemonSets: [{ namespace: 'kube-system', name: 'raven-tunnel-agent', args: ['--vpn-driver=libreswan'] }] });
    expect(messages(libreswan, 'mtu')[0]).toMatch(/IPsec tunnel carries 1436 bytes \(-64\)/);
    const answered = checkEnvironment(walkthrough(), env({ agents: [agent(gatewayReport()), agent(healthy('cloud-1'))] })).notes.filter((n) => n.topic === 'mtu');
    expect(answered.map((n) => n.message)).toEqual([
      'node hz-1: underlay eth0 has MTU 1450 (< 1500), so vxlan carries 1400 and the tunnel 1370',
      'tunnel MTU smallest 1370 (gateways: hz-1 1370, cloud-1 1420); cross-domain UDP/ICMP larger than that is fragmented or dropped, TCP is clamped',
    ]);
    expect(answered[0]!.fix).toBe("keep pod MTU <= 1370 for UDP workloads (the CNI's MTU setting)");
  });

  it('firewall: the ports each exposed Gateway needs open at its public IP, per driver', () => {
    expect(messages(env(), 'firewall')).toEqual(["gateway gw-cloud: UDP 4500 must be open inbound at 47.0.0.1 (node cloud-1) from the other domains' gateways"]);
    const libreswan = env({ daemonSets: [{ namespace: 'kube-system', name: 'raven-tunnel-agent', args: ['--vpn-driver=libreswan'] }] });
    expect(messages(libreswan, 'firewall')[0]).toMatch(/UDP 500 and 4500 \(IKE, NAT-T\), and ESP \(IP protocol 50\)/);
    const s = walkthrough();
    s.gateways[0]!.status!.activeEndpoints![0]!.port = 51820;
    expect(checkEnvironment(s, env()).notes.find((n) => n.topic === 'firewall')!.fix).toMatch(/udp\/51820 to 47\.0\.0\.1/);
  });
});

describe('the report with notes', () => {
  it('prints notes first and keeps the exit-relevant counts to findings', () => {
    const r = report([], [{ topic: 'cni', message: 'CNI: flannel\u001b[31m', fix: 'x' }]);
    expect(r).toMatchObject({ healthy: true, errors: 0, warnings: 0 });
    expect(renderReport(r)).toBe('INFO     cni  CNI: flannel?[31m\n         hint: x\n\nNo problems found.\n');
  });
});
