import { describe, expect, it } from 'vitest';
import { diagnose, type Finding } from '../src/diagnose.ts';
import { renderReport, report } from '../src/diagnose-command.ts';
import type { Snapshot } from '../src/snapshot.ts';
import { NOW, gateway, lease, node, walkthrough } from './fixtures.ts';

const HOUR = 3_600_000;

/** The walkthrough with one fault injected. */
function broken(edit: (s: Snapshot) => void): Snapshot {
  const s = walkthrough();
  edit(s);
  return s;
}

const brief = (f: Finding) => `${f.severity} ${f.check} ${f.object}`;

/** Lists `node` as a proxy endpoint of `gateway` (the approver's rule then lets it hold a proxy identity). */
function listProxy(s: Snapshot, gateway: string, node: string): void {
  const gw = s.gateways.find((g) => g.metadata.name === gateway)!;
  gw.spec!.endpoints = [...(gw.spec!.endpoints ?? []), { type: 'proxy', nodeName: node, underNAT: true }];
  s.heartbeats.push(lease('proxy', node, 0.2));
}

describe('diagnose', () => {
  it('finds nothing wrong in the healthy walkthrough', () => {
    expect(diagnose(walkthrough())).toEqual([]);
  });

  it.each<{ fault: string; snapshot: Snapshot; want: string[]; message?: RegExp; fix?: RegExp }>([
    { fault: 'raven-cfg missing', snapshot: broken((s) => { s.ravenConfig = undefined; }), want: ['error config configmap/kube-system/raven-cfg'], fix: /kubectl apply/ },
    { fault: 'L3 off in raven-cfg', snapshot: broken((s) => { s.ravenConfig = { 'enable-l3-tunnel': 'false', 'enable-l7-proxy': 'true' }; }), want: ['warning config configmap/kube-system/raven-cfg'], message: /enable-l3-tunnel is "false"/, fix: /patch configmap raven-cfg .*"enable-l3-tunnel":"true"/ },
    { fault: 'both modes off', snapshot: broken((s) => { s.ravenConfig = {}; }), want: ['error config configmap/kube-system/raven-cfg'] },
    { fault: 'a node without a Gateway label', snapshot: broken((s) => { s.nodes.push(node('lonely')); }), want: ['warning node-gateway-label node/lonely'], fix: /kubectl label node 'lonely' raven\.openyurt\.io\/gateway=/ },
    { fault: 'a node labelled with a missing Gateway', snapshot: broken((s) => { s.nodes.push(node('typo', 'gw-hangzou')); }), want: ['error node-gateway-label node/typo'], message: /"gw-hangzou", which does not exist/ },
    {
      fault: 'no exposed Gateway',
      snapshot: broken((s) => { delete s.gateways[0]!.spec!.exposeType; }),
      want: ['error exposed-gateway gateways'], fix: /kubectl patch gateway 'gw-cloud' .*"exposeType":"PublicIP"/,
    },
    {
      fault: 'an exposed Gateway whose active tunnel endpoint has no publicIP',
      snapshot: broken((s) => { for (const e of s.gateways[0]!.status!.activeEndpoints!) delete e.publicIP; }),
      want: ['error public-ip gateway/gw-cloud'], fix: /kubectl annotate node 'cloud-1' raven\.openyurt\.io\/public-ip=/,
    },
    {
      fault: 'a publicIP given by the node annotation is enough',
      snapshot: broken((s) => { for (const e of s.gateways[0]!.status!.activeEndpoints!) delete e.publicIP; s.nodes[0]!.annotations['raven.openyurt.io/public-ip'] = '47.0.0.1'; }),
      want: [],
    },
    { fault: 'a Gateway without endpoints', snapshot: broken((s) => { s.gateways.push(gateway('gw-empty')); }), want: ['warning gateway-endpoints gateway/gw-empty'] },
    {
      fault: 'a Gateway not Ready',
      snapshot: broken((s) => { s.gateways[1]!.status!.conditions = [{ type: 'Ready', status: 'False', reason: 'NoEndpointAvailable', message: 'tunnel: hz-1 heartbeat expired', lastTransitionTime: '' }]; }),
      want: ['error gateway-ready gateway/gw-hangzhou'], message: /NoEndpointAvailable.*hz-1 heartbeat expired/,
    },
    {
      fault: 'a stopped agent: stale heartbeat',
      snapshot: broken((s) => { s.heartbeats[1] = lease('tunnel', 'hz-1', 40); }),
      want: ['error heartbeat lease/raven-heartbeats/raven-tunnel-hz-1'], message: /tunnel-agent on hz-1 stopped heartbeating: last renewal 40s ago \(valid 2s\)/,
    },
    { fault: 'a candidate with no heartbeat Lease', snapshot: broken((s) => { s.heartbeats.splice(2, 1); }), want: ['warning heartbeat lease/raven-heartbeats/raven-tunnel-qd-1'] },
    { fault: 'proxy heartbeats are not required while L7 is off', snapshot: broken((s) => { s.ravenConfig!['enable-l7-proxy'] = 'false'; s.heartbeats.pop(); }), want: [] },
    { fault: 'PSK Secret missing', snapshot: broken((s) => { s.psk = { secret: 'missing', hasKey: false }; }), want: ['error psk secret/kube-system/raven-agent-secret'], fix: /create secret generic raven-agent-secret --from-literal=vpn-connection-psk=/ },
    { fault: 'PSK Secret without its key', snapshot: broken((s) => { s.psk = { secret: 'present', hasKey: false }; }), want: ['error psk secret/kube-system/raven-agent-secret'] },
    { fault: 'PSK not needed without L3', snapshot: broken((s) => { s.psk = { secret: 'missing', hasKey: false }; s.ravenConfig!['enable-l3-tunnel'] = 'false'; }), want: ['warning config configmap/kube-system/raven-cfg'] },
    {
      fault: 'an expired proxy-client certificate',
      snapshot: broken((s) => { listProxy(s, 'gw-hangzhou', 'hz-1'); s.certificates = [{ csr: 'raven-proxy-client-hz-1-abc', component: 'proxy-client', nodeName: 'hz-1', notBefore: NOW - 48 * HOUR, notAfter: NOW - HOUR }]; }),
      want: ['error certificate csr/raven-proxy-client-hz-1-abc'], message: /proxy-client certificate for hz-1 expired/,
    },
    {
      fault: 'only the newest certificate counts',
      snapshot: broken((s) => { s.certificates = [
        { csr: 'raven-proxy-client-hz-1-old', component: 'proxy-client', nodeName: 'hz-1', notBefore: NOW - 48 * HOUR, notAfter: NOW - HOUR },
        { csr: 'raven-proxy-client-hz-1-new', component: 'proxy-client', nodeName: 'hz-1', notBefore: NOW - HOUR, notAfter: NOW + 23 * HOUR },
      ]; }),
      want: [],
    },
    {
      fault: 'a certificate close to expiry',
      snapshot: broken((s) => { s.certificates = [{ csr: 'raven-proxy-server-cloud-1-x', component: 'proxy-server', nodeName: 'cloud-1', notBefore: NOW - 95 * HOUR, notAfter: NOW + HOUR }]; }),
      want: ['warning certificate csr/raven-proxy-server-cloud-1-x'],
    },
    {
      fault: 'a denied CSR and no certificate',
      snapshot: broken((s) => { listProxy(s, 'gw-qingdao', 'qd-1'); s.certificates = [{ csr: 'raven-proxy-client-qd-1-x', component: 'proxy-client', nodeName: 'qd-1', refused: 'Denied: token not bound to a Pod on qd-1' }]; }),
      want: ['error certificate csr/raven-proxy-client-qd-1-x'], message: /Denied: token not bound/,
    },
    {
      fault: 'no finding for a refused CSR of a node that may not hold the identity (a standby proxy-server on a node that is no candidate)',
      snapshot: broken((s) => { s.certificates = [{ csr: 'raven-proxy-server-cloud-2-x', component: 'proxy-server', nodeName: 'cloud-2', refused: 'Denied: node cloud-2 is not a proxy endpoint of an exposed Gateway' }]; }),
      want: [],
    },
    { fault: 'CSRs not readable', snapshot: broken((s) => { s.certificatesReadable = false; }), want: ['warning certificate certificatesigningrequests'] },
    {
      fault: 'a node clock 30 s ahead',
      snapshot: broken((s) => { s.heartbeats[1] = lease('tunnel', 'hz-1', 0.2, { serverWriteTime: Math.floor((NOW - 200) / 1000) * 1000 - 30_000 }); }),
      want: ['warning clock-skew node/hz-1'], message: /about 30s ahead of the apiserver/,
    },
    {
      fault: 'a node clock 10 s behind',
      snapshot: broken((s) => { s.heartbeats[1] = lease('tunnel', 'hz-1', 0.2, { serverWriteTime: NOW + 10_000 }); }),
      want: ['warning clock-skew node/hz-1'], message: /behind the apiserver/,
    },
    { fault: 'second truncation of the server time is not skew', snapshot: broken((s) => { s.heartbeats[1] = lease('tunnel', 'hz-1', 0.2, { serverWriteTime: Math.floor((NOW - 200) / 1000) * 1000 - 900 }); }), want: [] },
    { fault: 'gateway-pickup leader stopped', snapshot: broken((s) => { s.pickupLeader!.renewTime = NOW - 60_000; }), want: ['error pickup-leader lease/kube-system/raven-gateway-pickup'] },
    {
      fault: 'a peer unreachable',
      snapshot: broken((s) => { s.gateways[1]!.status!.connections![0] = { gateway: 'gw-cloud', nodeName: 'cloud-1', endpoint: '47.0.0.1:4500', status: 'Error', statusMessage: 'no probe reply for 6s' }; }),
      want: ['error connection gateway/gw-hangzhou'], message: /peer gw-cloud \(cloud-1\) is Error: no probe reply/, fix: /UDP 4500 between hz-1 and cloud-1 \(47\.0\.0\.1:4500\)/,
    },
    {
      fault: 'member nodes without a pod subnet',
      snapshot: broken((s) => { s.gateways[1]!.status!.nodes = [{ nodeName: 'hz-1', subnets: ['10.244.1.0/24'] }, { nodeName: 'hz-2' }, { nodeName: 'hz-3', subnets: [] }]; }),
      want: ['warning pod-subnet gateway/gw-hangzhou'], message: /2 member node\(s\) have no pod subnet .*: hz-2, hz-3$/, fix: /--allocate-node-cidrs/,
    },
    { fault: 'pod subnets do not matter without L3', snapshot: broken((s) => { s.ravenConfig!['enable-l3-tunnel'] = 'false'; s.gateways[1]!.status!.nodes = [{ nodeName: 'hz-2' }]; }), want: ['warning config configmap/kube-system/raven-cfg'] },
    { fault: 'an invalid Gateway', snapshot: broken((s) => { s.invalidGateways.push({ name: 'bad', error: '✖ Invalid input\n  → at spec.endpoints' }); }), want: ['error gateway-schema gateway/bad'] },
  ])('$fault', ({ snapshot, want, message, fix }) => {
    const findings = diagnose(snapshot);
    expect(findings.map(brief)).toEqual(want);
    if (message) expect(findings[0]!.message).toMatch(message);
    if (fix) expect(findings[0]!.fix).toMatch(fix);
    for (const f of findings) expect(f.fix).not.toContain('\n');
  });

  it('lists errors before warnings', () => {
    const s = broken((x) => { x.nodes.push(node('lonely')); x.psk = { secret: 'missing', hasKey: false }; });
    expect(diagnose(s).map((f) => f.severity)).toEqual(['error', 'warning']);
  });

  it('quotes hostile node names in fix commands', () => {
    const s = broken((x) => { x.nodes.push(node("a'; rm -rf / #")); });
    expect(diagnose(s)[0]!.fix).toContain(`kubectl label node 'a'\\''; rm -rf / #' `);
  });
});

describe('report', () => {
  it('summarises and renders one line per finding plus its fix', () => {
    const r = report(diagnose(broken((s) => { s.psk = { secret: 'missing', hasKey: false }; s.nodes.push(node('x\u001b[31m')); })));
    expect(r).toMatchObject({ healthy: false, errors: 1, warnings: 1 });
    const text = renderReport(r);
    expect(text).toMatch(/^ERROR {4}psk {2}secret\/kube-system\/raven-agent-secret: the tunnel PSK Secret is missing.*\n {9}fix: kubectl -n kube-system create secret/);
    expect(text).not.toContain('\u001b');
    expect(text).toMatch(/1 error\(s\), 1 warning\(s\)\.\n$/);
    expect(renderReport(report([]))).toBe('No problems found.\n');
  });
});
