import type { Gateway } from '@raven/api-types';
import { table } from './render.ts';
import { LARGE_PING_BYTES, type CheckResult, type ProbeCheck, type ProbeSite } from './probes.ts';

/**
 * `ravenctl verify` as pure functions: which checks every probe runs, the matrix of their results, and what the
 * pattern of failures points at, each with a fix. The command (verify-command.ts) only creates Pods and reads back.
 */

/** Where every probe's responder and its domain's Service answer. */
export interface ProbeAddresses {
  /** Responder Pod IP by node. */
  podIPs: ReadonlyMap<string, string>;
  /** ClusterIP of each Gateway's responder Service. */
  serviceIPs: ReadonlyMap<string, string>;
}

/** Per probe node: pings to every other probe, large pings and ClusterIP GETs to the other domains. */
export function planChecks(sites: readonly ProbeSite[], addresses: ProbeAddresses): Map<string, ProbeCheck[]> {
  const plan = new Map<string, ProbeCheck[]>();
  for (const from of sites) {
    let id = 0;
    const checks: ProbeCheck[] = [];
    for (const to of sites) {
      const address = addresses.podIPs.get(to.node);
      if (to === from || !address) continue;
      checks.push({ id: id++, kind: 'pod', to: to.node, address });
      if (to.gateway !== from.gateway) checks.push({ id: id++, kind: 'large', to: to.node, address });
    }
    for (const gateway of new Set(sites.map((s) => s.gateway))) {
      const address = addresses.serviceIPs.get(gateway);
      if (gateway !== from.gateway && address) checks.push({ id: id++, kind: 'service', to: gateway, address });
    }
    plan.set(from.node, checks);
  }
  return plan;
}

export type CellState = 'ok' | 'fail' | 'unknown';

export interface VerifyRow {
  from: string;
  fromGateway: string;
  kind: ProbeCheck['kind'] | 'l7';
  to: string;
  /** The Gateway of an L7 call's node. */
  toGateway?: string;
  state: CellState;
  rttMs?: number;
  detail: string;
}

/** What a prober reported, or why it reported nothing (did not start, ran out of time). */
export interface ProberOutcome {
  results?: ReadonlyMap<number, CheckResult>;
  failure?: string;
}

/** One L7 call through the apiserver to an edge node by name (node proxy, then a probe Pod's logs). */
export interface L7Outcome {
  node: string;
  gateway: string;
  ok: boolean;
  detail: string;
}

export function verifyRows(sites: readonly ProbeSite[], plan: ReadonlyMap<string, readonly ProbeCheck[]>, outcomes: ReadonlyMap<string, ProberOutcome>, l7: readonly L7Outcome[]): VerifyRow[] {
  const rows: VerifyRow[] = [];
  for (const from of sites) {
    const outcome = outcomes.get(from.node);
    for (const check of plan.get(from.node) ?? []) {
      const result = outcome?.results?.get(check.id);
      const row: VerifyRow = { from: from.node, fromGateway: from.gateway, kind: check.kind, to: check.to, state: 'unknown', detail: '' };
      if (!result) row.detail = outcome?.failure ?? 'no result reported';
      else {
        row.state = result.ok ? 'ok' : 'fail';
        if (result.rttMs !== undefined) row.rttMs = result.rttMs;
        row.detail = check.kind === 'service' && result.answeredBy ? `answered by ${result.answeredBy}` : result.detail;
      }
      rows.push(row);
    }
  }
  for (const call of l7) rows.push({ from: 'apiserver', fromGateway: '', kind: 'l7', to: call.node, toGateway: call.gateway, state: call.ok ? 'ok' : 'fail', detail: call.detail });
  return rows;
}

export interface Explanation {
  problem: string;
  fix: string;
  /** The rows it explains. */
  rows: number;
}

const key = (r: VerifyRow) => `${r.from}|${r.kind}|${r.to}`;

/**
 * Reads the failure pattern, most specific first, so that each failed row is explained once:
 * a probe that could not run; one node of a domain cut off while its neighbour works; a whole domain pair down
 * (with what the Gateways' status says about the tunnel); large packets lost where small ones pass (MTU);
 * ClusterIPs failing where pods answer (kube-proxy, routes by destination); L7 calls failing (proxy path).
 */
export function explainFailures(rows: readonly VerifyRow[], sites: readonly ProbeSite[], gateways: readonly Gateway[]): Explanation[] {
  const explained = new Set<string>();
  const out: Explanation[] = [];
  const failed = rows.filter((r) => r.state !== 'ok');
  const add = (these: VerifyRow[], problem: string, fix: string) => {
    const fresh = these.filter((r) => !explained.has(key(r)));
    if (fresh.length === 0) return;
    for (const r of fresh) explained.add(key(r));
    out.push({ problem, fix, rows: fresh.length });
  };
  const siteOf = new Map(sites.map((s) => [s.node, s]));
  const gatewayOf = (node: string) => siteOf.get(node)?.gateway ?? '';
  /** The domain a row probes: a Service row names its Gateway, the others a node. */
  const targetDomain = (r: VerifyRow) => (r.kind === 'service' ? r.to : gatewayOf(r.to));
  const crossDomain = (r: VerifyRow) => r.kind !== 'l7' && targetDomain(r) !== r.fromGateway;
  const betweenDomains = (r: VerifyRow, a: string, b: string) => r.kind !== 'l7' && ((r.fromGateway === a && targetDomain(r) === b) || (r.fromGateway === b && targetDomain(r) === a));

  for (const r of failed.filter((f) => f.state === 'unknown' && f.kind !== 'l7')) {
    add(failed.filter((f) => f.from === r.from && f.state === 'unknown'), `the probe on ${r.from} reported nothing: ${r.detail}`,
      `kubectl describe pod on ${r.from} in the probe namespace (image pull, taints, admission), or pass --image with a reachable busybox image`);
  }

  for (const site of sites) {
    const mine = rows.filter((r) => r.from === site.node && crossDomain(r));
    const neighbours = sites.filter((s) => s.gateway === site.gateway && s.node !== site.node);
    const neighbourOk = neighbours.some((n) => rows.some((r) => r.from === n.node && crossDomain(r) && r.state === 'ok'));
    if (mine.length > 0 && mine.every((r) => r.state === 'fail') && neighbourOk) {
      // Its answers to other domains take the same broken way back, so their probes of it fail too.
      const toIt = failed.filter((r) => r.to === site.node && r.kind !== 'l7' && r.fromGateway !== site.gateway);
      add([...mine, ...toIt], `${site.node} (${site.role} of ${site.gateway}) reaches no other domain while its neighbour does: its routes or vxlan to the gateway are broken`,
        `ravenctl diagnose, then the tunnel-agent log on ${site.node}; the agent repairs its routes within one resync period`);
    }
  }

  const domains = [...new Set(sites.map((s) => s.gateway))];
  const gatewayByName = new Map(gateways.map((g) => [g.metadata.name, g]));
  for (const a of domains) {
    for (const b of domains) {
      if (a >= b) continue;
      const pods = rows.filter((r) => r.kind === 'pod' && betweenDomains(r, a, b));
      if (pods.length === 0 || pods.some((r) => r.state === 'ok')) continue;
      add(failed.filter((r) => betweenDomains(r, a, b)), `no pod of ${a} reaches a pod of ${b}: ${tunnelState(gatewayByName.get(a), b, gatewayByName.get(b), a)}`,
        `ravenctl diagnose (PSK, firewall: the tunnel's UDP port at the public address, handshake ages); kubectl get gateway ${a} ${b} -o yaml`);
    }
  }

  for (const r of failed.filter((f) => f.kind === 'large')) {
    const small = rows.find((s) => s.kind === 'pod' && s.from === r.from && s.to === r.to);
    if (small?.state === 'ok') {
      add(failed.filter((f) => f.kind === 'large' && f.fromGateway === r.fromGateway && gatewayOf(f.to) === gatewayOf(r.to)),
        `${r.fromGateway} -> ${gatewayOf(r.to)}: small pings pass but ${LARGE_PING_BYTES}-byte ones are lost (fragments or path MTU)`,
        'check the underlay MTU along the path and that ICMP "fragmentation needed" is not filtered; lower the tunnel MTU in raven-cfg if the underlay is smaller');
    }
  }

  for (const r of failed.filter((f) => f.kind === 'service')) {
    const podsOk = rows.some((p) => p.kind === 'pod' && p.from === r.from && targetDomain(p) === r.to && p.state === 'ok');
    add(failed.filter((f) => f.kind === 'service' && f.to === r.to),
      podsOk ? `the ClusterIP of ${r.to}'s probe Service is unreachable from ${r.from} while ${r.to}'s pods answer` : `the ClusterIP of ${r.to}'s probe Service is unreachable from ${r.from}`,
      podsOk ? `check kube-proxy on ${r.from} (its mode, its rules for the Service) and that the agent routes remote pod prefixes by destination` : 'fix the pod-to-pod path first; the Service rides on it');
  }

  for (const r of failed.filter((f) => f.kind === 'l7')) {
    add([r], `the apiserver could not reach the kubelet of ${r.to} by name (${r.detail})`,
      `ravenctl show (proxy heartbeats of ${r.toGateway || 'its Gateway'}), ravenctl diagnose (proxy certificates), and that the apiserver resolves node names through raven-proxy-dns`);
  }
  for (const r of failed.filter((f) => !explained.has(key(f)))) add([r], `${r.from} -> ${r.to} (${r.kind}) failed: ${r.detail || 'no answer'}`, 'ravenctl diagnose');
  return out;
}

function tunnelState(a: Gateway | undefined, bName: string, b: Gateway | undefined, aName: string): string {
  if (!a || !b) return 'a Gateway is missing';
  for (const [gw, other] of [[a, bName], [b, aName]] as const) {
    if (!(gw.status?.activeEndpoints ?? []).some((e) => e.type === 'tunnel')) return `${gw.metadata.name} has no active tunnel endpoint`;
    const conn = gw.status?.connections?.find((c) => c.gateway === other);
    if (conn && conn.status !== 'Connected') return `${gw.metadata.name} reports its connection to ${other} as ${conn.status}${conn.statusMessage ? ` (${conn.statusMessage})` : ''}`;
  }
  return 'both Gateways report the tunnel Connected, so the packets are lost on the way (firewall, PSK, or routes on a gateway)';
}

export function renderVerify(rows: readonly VerifyRow[], explanations: readonly Explanation[]): string {
  const cell = (r: VerifyRow) => (r.state === 'ok' ? `ok${r.rttMs !== undefined ? ` ${r.rttMs.toFixed(1)} ms` : ''}` : r.state.toUpperCase());
  const body = table(['from', 'check', 'to', 'result', 'detail'], rows.map((r) => [r.from, r.kind, r.to, cell(r), r.state === 'ok' && r.kind !== 'service' && r.kind !== 'l7' ? '' : r.detail]));
  const failed = rows.filter((r) => r.state !== 'ok').length;
  if (failed === 0) return `${body}\nAll ${rows.length} checks passed.\n`;
  const lines = explanations.flatMap((e) => [`PROBLEM  ${e.problem}`, `    fix: ${e.fix}`]);
  return `${body}\n${failed} of ${rows.length} checks failed:\n${lines.join('\n')}\n`;
}
