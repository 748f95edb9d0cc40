import type { DriverName, PeerPlan, VpnPlan } from '../planner.ts';

/** A driver's tunnel to one planned peer, keyed like the plan (as Submariner's `GetConnections()`). */
export interface PeerStatus {
  gateway: string;
  nodeName: string;
  /** The address the peer's packets come from, when the driver learned it (NATed peers). */
  endpoint?: string;
  latestHandshake?: Date;
  rxBytes: number;
  txBytes: number;
}

/** One tunnel technology between gateways (the seam Submariner calls a cable driver). */
export interface VpnDriver {
  readonly name: DriverName;
  /** Prepares key material and checks prerequisites; returns what peers need to know (a public key). */
  init(): Promise<{ publicKey?: string }>;
  /** Makes the tunnels match the plan; undefined means this node is no gateway and must have no tunnel. Idempotent. */
  apply(plan: VpnPlan | undefined): Promise<{ changed: boolean }>;
  /** Why this driver configures no tunnel to a planned peer; undefined when it does. Pure. */
  unconfigured(peer: PeerPlan): string | undefined;
  /** The tunnels up towards the plan's peers; a peer without one is left out. */
  status(plan: VpnPlan): Promise<PeerStatus[]>;
  /** Explicit uninstall only: a restart never calls this. */
  cleanup(): Promise<void>;
}

export class VpnDriverError extends Error {
  override readonly name = 'VpnDriverError';
}

export const peerKey = (p: { gateway: string; nodeName: string }): string => `${p.gateway}/${p.nodeName}`;
