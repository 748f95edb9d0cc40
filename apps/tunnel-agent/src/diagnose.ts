import {
  AGENT_DIAGNOSE_KIND, DATAPATH, DRIFT_WINDOW_SECONDS, KERNEL_SUBSYSTEMS, agentDiagnoseSchema,
  type AgentDiagnose, type AgentPeerReport, type KernelSubsystem,
} from '@raven/api-types';
import type { ApplySummary } from '@raven/netlink';
import type { PeerReport } from './connections.ts';
import type { HostFacts } from './facts.ts';
import type { DataPathPlan, DriverName } from './planner.ts';

/** What one apply of one kernel subsystem did. */
export interface ApplyOutcome {
  name: KernelSubsystem;
  at: number;
  /** The kernel was read back (not trusted from the last apply). */
  verified: boolean;
  summary: ApplySummary;
  lastChange?: { at: number; summary: ApplySummary };
  error?: string;
}

/** A verified apply that changed the kernel although the plan had not changed: someone else changed Raven's objects. */
export interface DriftEvent {
  subsystem: KernelSubsystem;
  at: number;
  summary: ApplySummary;
  samples: { added: string[]; removed: string[] };
}

const SAMPLE = 8;
const TEXT = 300;
const clip = (s: string) => (s.length > TEXT ? `${s.slice(0, TEXT - 1)}…` : s);
const clipAll = (xs: readonly string[], n = SAMPLE) => xs.slice(0, n).map(clip);

/** One kernel object as an operator would name it: a route's prefix and table, a rule's selectors, an fdb entry. */
function describe(item: unknown): string {
  if (typeof item !== 'object' || item === null) return String(item);
  const o = item as Record<string, unknown>;
  if (typeof o.key === 'string') return o.key;
  const parts: string[] = [];
  if (o.dst !== undefined) parts.push(String(o.dst));
  if (o.table !== undefined) parts.push(`table ${String(o.table)}`);
  if (o.via !== undefined) parts.push(`via ${String(o.via)}`);
  if (o.dev !== undefined) parts.push(`dev ${String(o.dev)}`);
  if (o.mac !== undefined) parts.push(`mac ${String(o.mac)}`);
  if (o.lladdr !== undefined) parts.push(`lladdr ${String(o.lladdr)}`);
  if (o.name !== undefined) parts.push(String(o.name));
  return parts.length > 0 ? parts.join(' ') : JSON.stringify(o);
}

/** Samples of a keyed diff's objects (missing or different: added; not wanted: removed); other diffs give none. */
export function diffSamples(diff: unknown): { added: string[]; removed: string[] } | undefined {
  const d = diff as { add?: unknown; remove?: unknown; change?: unknown };
  if (!Array.isArray(d?.add) || !Array.isArray(d.remove) || !Array.isArray(d.change)) return undefined;
  const changed = (d.change as Array<{ desired?: unknown }>).map((c) => c.desired);
  return { added: [...d.add, ...changed].slice(0, SAMPLE).map(describe), removed: d.remove.slice(0, SAMPLE).map(describe) };
}

export interface DiagnoseInput {
  nodeName: string;
  now: number;
  driver: DriverName;
  l3Enabled: boolean;
  ready: boolean;
  lastError?: string;
  psk?: AgentDiagnose['psk'];
  plan?: DataPathPlan;
  planAt?: number;
  host?: HostFacts;
  outcomes: readonly ApplyOutcome[];
  drift: readonly DriftEvent[];
  /** The last probe round's reports (gateways only) and when it ran. */
  peers?: { at: number; reports: readonly PeerReport[]; unconfigured: (report: PeerReport) => string | undefined };
}

const iso = (ms: number) => new Date(ms).toISOString();
const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;

function peerReport(r: PeerReport, now: number, unconfigured: string | undefined): AgentPeerReport {
  const handshake = r.tunnel?.latestHandshake?.getTime();
  return {
    gateway: clip(r.target.gateway), nodeName: clip(r.target.nodeName),
    ...(r.connection.endpoint ? { endpoint: clip(r.connection.endpoint) } : {}),
    ...(r.target.relayed ? { relayedVia: clip(r.target.via.gateway) } : {}),
    reachable: r.health.reachable,
    ...(r.health.lastRttMs !== undefined ? { rttMs: round(r.health.lastRttMs) } : {}),
    ...(handshake !== undefined && handshake > 0 ? { handshakeAgeSeconds: round(Math.max(0, (now - handshake) / 1000), 1) } : {}),
    ...(r.tunnel ? { rxBytes: Math.max(0, Math.trunc(r.tunnel.rxBytes)), txBytes: Math.max(0, Math.trunc(r.tunnel.txBytes)) } : {}),
    ...(unconfigured ? { unconfigured: clip(unconfigured) } : {}),
    ...(!r.health.reachable && r.health.lastError ? { lastError: clip(r.health.lastError) } : {}),
  };
}

function mtuOf(plan: DataPathPlan | undefined, host: HostFacts | undefined): AgentDiagnose['mtu'] {
  if (!host) return undefined;
  const vxlan = plan?.links.find((l) => l.name === DATAPATH.vxlanDevice)?.mtu;
  return { underlayDevice: clip(host.underlayDevice), underlay: host.underlayMtu, ...(vxlan !== undefined ? { vxlan } : {}), ...(plan?.vpn ? { tunnel: plan.vpn.mtu } : {}) };
}

/**
 * The diagnose report from what the agent already holds: its last plan, the applier's outcomes and drift history,
 * the last probe round. Pure; strings that came from Gateways or the kernel are clipped, and the result is checked
 * against the schema ravenctl parses with.
 */
export function buildDiagnoseReport(input: DiagnoseInput): AgentDiagnose {
  const { plan, now } = input;
  const since = now - DRIFT_WINDOW_SECONDS * 1000;
  const outcomes = new Map(input.outcomes.map((o) => [o.name, o]));
  const subsystems = KERNEL_SUBSYSTEMS.flatMap((name): AgentDiagnose['subsystems'] => {
    const o = outcomes.get(name);
    const drift = input.drift.filter((d) => d.subsystem === name && d.at >= since);
    if (!o && drift.length === 0) return [];
    const last = drift.at(-1);
    return [{
      name,
      ...(o ? { lastAppliedAt: iso(o.at) } : {}),
      verified: o?.verified ?? false,
      ...(o?.lastChange ? { lastChange: { at: iso(o.lastChange.at), ...o.lastChange.summary } } : {}),
      driftRepairs: drift.length,
      ...(last ? { lastDrift: { at: iso(last.at), ...last.summary, addedSample: clipAll(last.samples.added), removedSample: clipAll(last.samples.removed) } } : {}),
      ...(o?.error ? { error: clip(o.error) } : {}),
    }];
  });
  const role = plan?.role;
  const report: AgentDiagnose = {
    kind: AGENT_DIAGNOSE_KIND, version: 1,
    node: clip(input.nodeName), generatedAt: iso(now), driver: input.driver, l3Enabled: input.l3Enabled, ready: input.ready,
    ...(input.lastError ? { lastError: clip(input.lastError) } : {}),
    ...(input.psk ? { psk: { ...input.psk, ...(input.psk.readError ? { readError: clip(input.psk.readError) } : {}) } } : {}),
    ...(plan && role ? {
      plan: {
        at: iso(input.planAt ?? now),
        role: role.kind === 'none' ? { kind: 'none', reason: clip(role.reason) }
          : role.kind === 'member' ? { kind: 'member', gateway: clip(role.gateway), gatewayNode: clip(role.gatewayNode) }
          : { kind: 'gateway', gateway: clip(role.gateway), central: role.central },
        remotePrefixes: plan.remotePrefixes.length, remotePrefixSample: clipAll(plan.remotePrefixes, 16),
        routes: plan.routes.length, rules: plan.rules.length, fdb: plan.fdb.length, neighbours: plan.neighbours.length,
        ipsets: plan.ipsets.length, links: plan.links.length, peers: plan.vpn?.peers.length ?? 0,
        dropped: clipAll(plan.dropped, 16),
      },
    } : {}),
    ...(input.host ? { mtu: mtuOf(plan, input.host) } : {}),
    driftWindowSeconds: DRIFT_WINDOW_SECONDS,
    subsystems,
    ...(input.peers ? { peersAt: iso(input.peers.at) } : {}),
    peers: (input.peers?.reports ?? []).slice(0, 4096).map((r) => peerReport(r, now, input.peers!.unconfigured(r))),
  };
  return agentDiagnoseSchema.parse(report);
}
