import type { Connection } from '@raven/api-types';
import type { PeerPlan, ProbeTarget } from './planner.ts';
import type { PeerHealth } from './probe.ts';
import { peerKey, type PeerStatus } from './vpn/driver.ts';

/** What the agent knows of one probed peer: the plan's target, the probes' verdict and the driver's tunnel. */
export interface PeerReport {
  target: ProbeTarget;
  health: PeerHealth;
  /** The driver's tunnel to the peer itself; a relayed peer has none of its own. */
  tunnel?: PeerStatus;
  connection: Connection;
}

const ms = (value?: number) => (value === undefined ? '' : `${value.toFixed(3)}ms`);

/**
 * `status.connections` from the plan's probe targets, their health and the driver's view: Connected while probes are
 * answered; otherwise Error when the driver cannot configure the tunnel at all (a relayed peer shares its central
 * gateway's), else Connecting.
 */
export function peerReports(
  targets: readonly ProbeTarget[],
  health: (gateway: string) => PeerHealth,
  tunnels: readonly PeerStatus[],
  unconfigured: (peer: PeerPlan) => string | undefined,
  relayReason: (gateway: string) => string | undefined = () => undefined,
): PeerReport[] {
  const byPeer = new Map(tunnels.map((s) => [peerKey(s), s]));
  return targets.map((target) => {
    const h = health(target.gateway);
    const tunnel = target.relayed ? undefined : byPeer.get(peerKey(target));
    const why = unconfigured(target.via);
    const endpoint = target.relayed ? undefined : target.via.endpoint || tunnel?.endpoint;
    const connection: Connection = {
      gateway: target.gateway,
      nodeName: target.nodeName,
      ...(endpoint ? { endpoint } : {}),
      status: h.reachable ? 'Connected' : why ? 'Error' : 'Connecting',
      ...(h.reachable ? {} : { statusMessage: why ?? h.lastError }),
      ...(h.reachable ? { latencyRTT: { last: ms(h.lastRttMs), min: ms(h.minRttMs), average: ms(h.avgRttMs), max: ms(h.maxRttMs) } } : {}),
      ...(target.relayed ? { relayedVia: target.via.gateway } : {}),
      ...(target.relayed && relayReason(target.gateway) ? { relayReason: relayReason(target.gateway) } : {}),
    };
    return { target, health: h, ...(tunnel ? { tunnel } : {}), connection };
  });
}

/**
 * What makes a change in status.connections worth an immediate write: who is reported, and how. The endpoint is part
 * of it because NATed gateways punch towards the mappings the central gateway reports (a home line's new address).
 */
const shape = (cs: readonly Connection[]) => cs.map((c) => `${c.gateway}/${c.nodeName}/${c.status}/${c.relayedVia ?? ''}/${c.endpoint ?? ''}/${c.relayReason ?? ''}`).join(',');

export const CONNECTIONS_REFRESH_MS = 60_000;

/**
 * Whether to write status.connections: at once when reachability changed, else at most once a minute for fresh
 * RTTs. A forced write (the node left the gateway role) happens only when it changes something.
 */
export function connectionsWriteDue(opts: { written: readonly Connection[]; next: readonly Connection[]; lastWriteMs: number; nowMs: number; force?: boolean }): boolean {
  const structural = shape(opts.next) !== shape(opts.written);
  if (opts.force) return structural;
  return structural || opts.nowMs - opts.lastWriteMs >= CONNECTIONS_REFRESH_MS;
}
