import type { DriverName, VpnPlan } from '../planner.ts';

export interface PeerStatus {
  /** WireGuard public key, or the IPsec connection name. */
  id: string;
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
  status(): Promise<PeerStatus[]>;
  /** Explicit uninstall only: a restart never calls this. */
  cleanup(): Promise<void>;
}

export class VpnDriverError extends Error {
  override readonly name = 'VpnDriverError';
}
