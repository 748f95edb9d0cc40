import { ANNOTATIONS, DATAPATH, PSK_SECRET, RAVEN_CFG_KEYS, endpointPort, type AgentDiagnose, type KernelSubsystem } from '@raven/api-types';
import type { Finding } from './diagnose.ts';
import type { AgentProbe, Environment } from './environment.ts';
import type { Snapshot } from './snapshot.ts';

/** Something worth knowing that is not a fault (it does not change the exit code), with what to do about it. */
export interface Note {
  topic: string;
  message: string;
  fix?: string;
}

export interface NodeCheckResult {
  findings: Finding[];
  notes: Note[];
}

/** WireGuard gives up on a session 180 s after its last handshake (REJECT_AFTER_TIME); it rekeys every 120 s. */
export const HANDSHAKE_STALE_SECONDS = 180;
export const COMMON_UNDERLAY_MTU = 1500;

const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;

/** Per subsystem: what one drifted object is called, and where to look for whoever changed it. */
const DRIFT: Record<KernelSubsystem, { what: string; look: (node: string) => string }> = {
  routes: { what: 'route', look: (n) => `check for other software flushing routes (NetworkManager, systemd-networkd, a CNI agent): ip route show table all | grep -E 'table (${DATAPATH.routeTableVxlan}|${DATAPATH.routeTableVpn})' on ${n}` },
  rules: { what: 'policy rule', look: (n) => `check for other software rewriting policy rules: ip rule show on ${n}` },
  fdb: { what: 'vxlan fdb entry', look: (n) => `check for other software flushing ${DATAPATH.vxlanDevice}'s forwarding entries: bridge fdb show dev ${DATAPATH.vxlanDevice} on ${n}` },
  neighbours: { what: 'neighbour entry', look: (n) => `check for other software flushing neighbours: ip neigh show dev ${DATAPATH.vxlanDevice} on ${n}` },
  iptables4: { what: 'iptables rule', look: (n) => `another firewall manager (firewalld, ufw, a CNI) rewrites the RAVEN-* chains: iptables-save | grep RAVEN on ${n}` },
  iptables6: { what: 'ip6tables rule', look: (n) => `another firewall manager (firewalld, ufw, a CNI) rewrites the RAVEN-* chains: ip6tables-save | grep RAVEN on ${n}` },
  ipsets: { what: 'ipset', look: (n) => `something flushes Raven's ipsets: ipset list -n | grep raven on ${n}` },
  links: { what: 'device', look: (n) => `something deletes or reconfigures ${DATAPATH.vxlanDevice}/${DATAPATH.wireguardDevice}: ip -d link show on ${n}` },
  addresses: { what: 'address', look: (n) => `something removes ${DATAPATH.vxlanDevice}'s address: ip addr show dev ${DATAPATH.vxlanDevice} on ${n}` },
  sysctls: { what: 'sysctl', look: (n) => `something resets forwarding or rp_filter sysctls (a sysctl.d file, a CNI): sysctl -a | grep -E 'forwarding|rp_filter' on ${n}` },
};

function driftMessage(node: string, s: AgentDiagnose['subsystems'][number], window: number): string {
  const d = s.lastDrift!;
  const { what } = DRIFT[s.name];
  const missing = d.addedSample[0];
  const foreign = d.removedSample[0];
  const detail = missing ? `${what} ${missing} was missing${d.added + d.changed > 1 ? ` (and ${d.added + d.changed - 1} more)` : ''}`
    : foreign ? `a ${what} Raven does not want appeared: ${foreign}${d.removed > 1 ? ` (and ${d.removed - 1} more)` : ''}`
    : `${d.added + d.changed + d.removed} ${what}(s) differed from the plan`;
  const mins = Math.round(window / 60);
  return `node ${node}: ${detail} (repaired ${s.driftRepairs} time(s) in the last ${mins === 60 ? 'hour' : `${mins} min`})`;
}

const logs = (ns: string, a: AgentProbe) => `kubectl -n ${ns} logs ${q(a.pod)} --tail=100`;

/** The PSK every agent should hold, by fingerprint: the Secret's, else (the Secret unreadable) most agents'. */
export interface PskReference {
  fingerprint: string;
  from: string;
}

/** An agent's PSK against the reference: a different one fails every handshake, and none at all as well. */
function checkAgentPsk(s: Snapshot, a: AgentProbe, node: string, psk: NonNullable<AgentDiagnose['psk']>, ref: PskReference | undefined): Finding[] {
  const obj = `node/${node}`;
  const secret = `secret/${PSK_SECRET.name}`;
  const fix = psk.source === 'file'
    ? `mount ${s.namespace}/${PSK_SECRET.name} (key ${PSK_SECRET.key}) at the agent's --psk-file path, or drop --psk-file: kubectl -n ${s.namespace} get ds raven-tunnel-agent -o yaml`
    : psk.readError
      ? `the agent cannot read the Secret: kubectl -n ${s.namespace} auth can-i get ${secret} --as=system:serviceaccount:${s.namespace}:raven-tunnel-agent`
      : `the agent re-reads the Secret every 30 s; if this lasts: ${logs(s.namespace, a)}`;
  const source = psk.source === 'file' ? 'from its --psk-file' : `from ${secret}`;
  if (ref && psk.fingerprint !== ref.fingerprint) {
    const held = psk.fingerprint ? `another PSK than ${ref.from} (fingerprint ${psk.fingerprint}, not ${ref.fingerprint}) ${source}` : `no PSK (reading ${psk.source === 'file' ? 'its --psk-file' : secret}), while ${ref.from} has one`;
    return [{ severity: 'error', check: 'psk', object: obj, message: `node ${node}: tunnel-agent holds ${held}: its tunnel handshakes with every peer fail`, fix }];
  }
  if (psk.readError) {
    return [{ severity: 'warning', check: 'psk', object: obj, message: `node ${node}: tunnel-agent cannot read its PSK (${psk.readError}): it keeps the one it has, so a rotated PSK will not reach it`, fix }];
  }
  return [];
}

/** Findings from one agent's own view of its node. */
export function checkAgentReport(s: Snapshot, a: AgentProbe & { report: AgentDiagnose }, pskRef?: PskReference): Finding[] {
  const r = a.report;
  // The Pod's node (from the API) over the name the agent reports about itself.
  const node = a.node ?? r.node;
  const obj = `node/${node}`;
  const out: Finding[] = r.psk ? checkAgentPsk(s, a, node, r.psk, pskRef) : [];
  if (!r.ready || r.lastError) {
    out.push({ severity: 'error', check: 'agent-reconcile', object: obj, message: `node ${node}: tunnel-agent is not ready${r.lastError ? `: ${r.lastError}` : ''}`, fix: logs(s.namespace, a) });
  }
  const cfg = s.ravenConfig?.[RAVEN_CFG_KEYS.l3Tunnel];
  if (s.ravenConfig && (cfg === 'true') !== r.l3Enabled) {
    out.push({ severity: 'warning', check: 'agent-config', object: obj, message: `node ${node}: tunnel-agent sees L3 ${r.l3Enabled ? 'on' : 'off'}, raven-cfg says enable-l3-tunnel="${cfg ?? ''}": its cache is stale`, fix: `kubectl -n ${s.namespace} delete pod ${q(a.pod)}   (the DaemonSet restarts it; a restart is hitless)` });
  }
  for (const sub of r.subsystems) {
    if (sub.error) out.push({ severity: 'error', check: 'kernel-apply', object: obj, message: `node ${node}: applying ${sub.name} failed: ${sub.error}`, fix: logs(s.namespace, a) });
    if (sub.driftRepairs > 0 && sub.lastDrift) out.push({ severity: 'warning', check: 'kernel-drift', object: obj, message: driftMessage(node, sub, r.driftWindowSeconds), fix: DRIFT[sub.name].look(node) });
  }
  for (const p of r.peers) {
    const peer = `${p.gateway} (${p.nodeName})`;
    const peerLogs = `kubectl -n ${s.namespace} logs -l app.kubernetes.io/component=tunnel-agent --field-selector ${q(`spec.nodeName=${p.nodeName}`)}`;
    if (p.unconfigured) {
      out.push({ severity: 'error', check: 'tunnel-peer', object: obj, message: `node ${node}: no tunnel to ${peer}: ${p.unconfigured}`, fix: peerLogs });
    } else if (p.relayedVia === undefined && p.handshakeAgeSeconds !== undefined && p.handshakeAgeSeconds > HANDSHAKE_STALE_SECONDS) {
      out.push({ severity: 'error', check: 'handshake', object: obj, message: `node ${node}: last WireGuard handshake with ${peer} was ${Math.round(p.handshakeAgeSeconds)}s ago (sessions expire after ${HANDSHAKE_STALE_SECONDS}s): the tunnel is down`, fix: `allow UDP between ${node} and ${p.endpoint ?? p.nodeName} (the exposed side's tunnel port must be open at its public IP); then: wg show ${DATAPATH.wireguardDevice} on ${node}` });
    } else if (p.relayedVia === undefined && r.driver === 'wireguard' && p.handshakeAgeSeconds === undefined && !p.reachable) {
      out.push({ severity: 'error', check: 'handshake', object: obj, message: `node ${node}: no WireGuard handshake with ${peer} yet${p.lastError ? ` (${p.lastError})` : ''}`, fix: `allow UDP between ${node} and ${p.endpoint ?? p.nodeName}; check that both sides share the PSK and published keys: ${peerLogs}` });
    }
  }
  return out;
}

/** Findings and notes from every agent's report; unreachable agents are notes, never errors. */
export function checkAgents(s: Snapshot, env: Pick<Environment, 'agents'>, asked: boolean): NodeCheckResult {
  const notes: Note[] = [];
  const findings: Finding[] = [];
  if (!asked) return { findings, notes: [{ topic: 'agents', message: 'tunnel-agents were not asked (--skip-agents)' }] };
  if (env.agents.length === 0) {
    return { findings, notes: [{ topic: 'agents', message: `no tunnel-agent Pods in ${s.namespace}: the per-node view (planned vs. actual kernel state, handshakes) was skipped`, fix: `kubectl -n ${s.namespace} get ds raven-tunnel-agent` }] };
  }
  const dropped = new Map<string, string[]>();
  const psk = pskReference(s, env.agents);
  if (psk.kind === 'split') findings.push(psk.finding);
  for (const a of env.agents) {
    if (!a.report) {
      notes.push({ topic: 'agents', message: `cannot ask tunnel-agent ${a.pod}${a.node ? ` on ${a.node}` : ''}: ${a.unavailable ?? 'no answer'}` });
      continue;
    }
    findings.push(...checkAgentReport(s, { ...a, report: a.report }, psk.kind === 'reference' ? psk.ref : undefined));
    for (const sentence of a.report.plan?.dropped ?? []) dropped.set(sentence, [...(dropped.get(sentence) ?? []), a.node ?? a.report.node]);
  }
  // Every agent screens the same Gateways: one finding per dropped value, not one per node.
  for (const [sentence, nodes] of dropped) {
    findings.push({ severity: 'warning', check: 'plan-dropped', object: 'gateways', message: `left out of the data path on ${nodes.length} node(s): ${sentence}`, fix: 'kubectl edit gateway <name>   (the sentence names the Gateway and the value)' });
  }
  const answered = env.agents.filter((a) => a.report).length;
  notes.unshift({ topic: 'agents', message: `${answered} of ${env.agents.length} tunnel-agent(s) answered` });
  return { findings, notes };
}

/**
 * The Secret's fingerprint when ravenctl could read it. Otherwise the agents' own: a strict majority is the
 * reference; a split without one is a single finding that lists who holds what.
 */
export function pskReference(s: Snapshot, agents: Environment['agents']): { kind: 'reference'; ref: PskReference } | { kind: 'split'; finding: Finding } | { kind: 'none' } {
  if (s.psk.fingerprint) return { kind: 'reference', ref: { fingerprint: s.psk.fingerprint, from: `secret/${PSK_SECRET.name}` } };
  const held = new Map<string, string[]>();
  for (const a of agents) {
    if (a.report?.psk) held.set(a.report.psk.fingerprint ?? 'none', [...(held.get(a.report.psk.fingerprint ?? 'none') ?? []), a.node ?? a.report.node]);
  }
  if (held.size < 2) return { kind: 'none' };
  const total = [...held.values()].reduce((n, nodes) => n + nodes.length, 0);
  const [top, nodes] = [...held].sort((x, y) => y[1].length - x[1].length)[0]!;
  if (top !== 'none' && nodes.length * 2 > total) return { kind: 'reference', ref: { fingerprint: top, from: `${nodes.length} of ${total} tunnel-agents` } };
  const groups = [...held].map(([f, n]) => `${f === 'none' ? 'no PSK' : f}: ${n.sort().join(', ')}`).join('; ');
  return { kind: 'split', finding: { severity: 'error', check: 'psk', object: 'daemonset/raven-tunnel-agent', message: `tunnel-agents hold ${held.size} different PSKs (by fingerprint): ${groups}`, fix: `give every agent ${s.namespace}/${PSK_SECRET.name}: kubectl -n ${s.namespace} get ds raven-tunnel-agent -o yaml` } };
}

const CNI_PATTERNS: Array<[string, RegExp]> = [
  ['canal', /canal/], ['flannel', /flannel/], ['calico', /calico-node/], ['cilium', /^cilium$|cilium-agent/], ['weave', /weave-net/],
  ['kube-router', /kube-router/], ['antrea', /antrea-agent/], ['kube-ovn', /kube-ovn-cni/],
];

export function detectCni(daemonSets: Environment['daemonSets']): Array<{ cni: string; daemonSet: string }> {
  return daemonSets.flatMap((d) => {
    const hit = CNI_PATTERNS.find(([, re]) => re.test(d.name));
    return hit ? [{ cni: hit[0], daemonSet: `${d.namespace}/${d.name}` }] : [];
  });
}

/** The VPN driver the tunnel-agents run: from their reports, else from the DaemonSet's --vpn-driver (default wireguard). */
export function vpnDriver(s: Snapshot, env: Environment): 'wireguard' | 'libreswan' {
  const reported = env.agents.find((a) => a.report)?.report?.driver;
  if (reported) return reported;
  const ds = env.daemonSets.find((d) => d.namespace === s.namespace && /tunnel-agent/.test(d.name));
  const arg = ds?.args.find((x) => x.startsWith('--vpn-driver='));
  return arg?.slice('--vpn-driver='.length) === 'libreswan' ? 'libreswan' : 'wireguard';
}

/** Firewall, MTU, CNI and kube-proxy hints from the API (and the agents' MTUs when they answered). */
export function checkEnvironment(s: Snapshot, env: Environment): NodeCheckResult {
  const notes: Note[] = env.forbidden.map((what) => ({ topic: 'access', message: `cannot read ${what} with these credentials: the hints below may be incomplete` }));
  const findings: Finding[] = [];
  const mode = env.kubeProxy.mode;
  if (!env.kubeProxy.configMap) {
    notes.push({ topic: 'kube-proxy', message: 'no kube-system/kube-proxy ConfigMap: kube-proxy runs from flags, or something else (Cilium, kube-router) serves Services', fix: 'kubectl -n kube-system get ds,pods -l k8s-app=kube-proxy' });
  } else if (mode === undefined) {
    notes.push({ topic: 'kube-proxy', message: 'the kube-proxy ConfigMap has no readable config.conf: mode unknown', fix: 'kubectl -n kube-system get configmap kube-proxy -o yaml' });
  } else {
    const shown = mode === '' ? 'iptables (the default)' : mode;
    notes.push({
      topic: 'kube-proxy', message: `kube-proxy mode: ${shown}${mode === '' || mode === 'iptables' ? '' : '; Raven is tested with iptables mode, so check pod→ClusterIP across domains'}`,
      ...(mode === '' || mode === 'iptables' ? {} : { fix: 'ravenctl verify   (or curl a ClusterIP backed only by pods in another domain)' }),
    });
  }

  const cnis = detectCni(env.daemonSets);
  if (cnis.length === 0) {
    notes.push({ topic: 'cni', message: 'no known CNI DaemonSet found (flannel, calico, cilium, weave, kube-router, antrea, kube-ovn) in kube-system, kube-flannel, calico-system or cilium', fix: 'ls /etc/cni/net.d on a node to see which CNI is configured' });
  } else {
    notes.push({ topic: 'cni', message: `CNI: ${cnis.map((c) => `${c.cni} (${c.daemonSet})`).join(', ')}` });
  }
  if (cnis.some((c) => c.cni === 'cilium')) {
    findings.push({ severity: 'warning', check: 'cni', object: cnis.find((c) => c.cni === 'cilium')!.daemonSet, message: "Cilium's eBPF host routing bypasses the host routing tables and iptables chains that Raven programs: cross-domain pod traffic may skip the tunnel", fix: 'helm upgrade cilium cilium/cilium --reuse-values --set bpf.hostLegacyRouting=true' });
  }
  const calico = cnis.some((c) => c.cni === 'calico' || c.cni === 'canal');
  const bare = s.nodes.filter((n) => n.podCIDRs?.length === 0).map((n) => n.name);
  if (bare.length > 0 && !calico) {
    notes.push({ topic: 'cni', message: `${bare.length} node(s) have no spec.podCIDR: ${bare.slice(0, 5).join(', ')}${bare.length > 5 ? ', ...' : ''} (fine with Calico IPAM, else their pods are not routed across domains)`, fix: 'kube-controller-manager --allocate-node-cidrs=true --cluster-cidr=<pod CIDR>' });
  }

  const driver = vpnDriver(s, env);
  const overhead = driver === 'wireguard' ? DATAPATH.mtuOverhead.wireguard : DATAPATH.mtuOverhead.ipsec;
  const reports = env.agents.flatMap((a) => (a.report?.mtu ? [{ node: a.node ?? a.report.node, mtu: a.report.mtu }] : []));
  const tunnels = reports.filter((r) => r.mtu.tunnel !== undefined);
  if (reports.length === 0) {
    notes.push({ topic: 'mtu', message: `no agent reported its MTUs; on a ${COMMON_UNDERLAY_MTU}-byte underlay the ${driver === 'wireguard' ? 'WireGuard' : 'IPsec'} tunnel carries ${COMMON_UNDERLAY_MTU - overhead} bytes (-${overhead}) and vxlan ${COMMON_UNDERLAY_MTU - DATAPATH.mtuOverhead.vxlan} (-${DATAPATH.mtuOverhead.vxlan}); TCP is clamped, larger UDP/ICMP across domains is fragmented or dropped`, fix: `keep pod MTU <= ${COMMON_UNDERLAY_MTU - overhead} for UDP workloads (the CNI's MTU setting)` });
  } else {
    const small = reports.filter((r) => r.mtu.underlay < COMMON_UNDERLAY_MTU);
    for (const r of small) {
      notes.push({ topic: 'mtu', message: `node ${r.node}: underlay ${r.mtu.underlayDevice} has MTU ${r.mtu.underlay} (< ${COMMON_UNDERLAY_MTU}), so vxlan carries ${r.mtu.vxlan ?? r.mtu.underlay - DATAPATH.mtuOverhead.vxlan}${r.mtu.tunnel !== undefined ? ` and the tunnel ${r.mtu.tunnel}` : ''}`, fix: `keep pod MTU <= ${r.mtu.tunnel ?? (r.mtu.vxlan ?? r.mtu.underlay - DATAPATH.mtuOverhead.vxlan)} for UDP workloads (the CNI's MTU setting)` });
    }
    const min = Math.min(...tunnels.map((t) => t.mtu.tunnel!));
    if (tunnels.length > 0) notes.push({ topic: 'mtu', message: `tunnel MTU ${tunnels.length === 1 ? '' : 'smallest '}${min} (gateways: ${tunnels.map((t) => `${t.node} ${t.mtu.tunnel}`).join(', ')}); cross-domain UDP/ICMP larger than that is fragmented or dropped, TCP is clamped` });
  }

  // Firewall: what must be open at each exposed Gateway's public address for the others to dial it.
  const nodes = new Map(s.nodes.map((n) => [n.name, n]));
  for (const gw of s.gateways.filter((g) => g.spec?.exposeType)) {
    for (const e of (gw.status?.activeEndpoints ?? []).filter((x) => x.type === 'tunnel')) {
      const ip = e.publicIP || nodes.get(e.nodeName)?.annotations[ANNOTATIONS.publicIP];
      if (!ip) continue; // diagnose already reports the missing publicIP
      const port = endpointPort(e);
      const open = driver === 'wireguard' ? `UDP ${port}` : `UDP 500 and ${port} (IKE, NAT-T), and ESP (IP protocol 50) where no NAT is on the path`;
      notes.push({ topic: 'firewall', message: `gateway ${gw.metadata.name}: ${open} must be open inbound at ${ip} (node ${e.nodeName}) from the other domains' gateways`, fix: `allow inbound ${driver === 'wireguard' ? `udp/${port}` : `udp/500, udp/${port}, esp`} to ${ip} in the security group / host firewall (e.g. ufw allow ${port}/udp)` });
    }
  }
  return { findings, notes };
}
