import { createHash } from 'node:crypto';

/**
 * The per-node heartbeat Lease contract between Raven's node processes and gateway-pickup.
 *
 * - Who renews: on every node listed as a candidate endpoint of a Gateway, the process that serves that endpoint
 *   type: `tunnel-agent` for `tunnel`, `proxy-server`/`proxy-client` for `proxy`.
 * - What: a coordination.k8s.io/v1 Lease in the `raven-heartbeats` namespace (its own, so that the node processes'
 *   permission to update Leases covers nothing else, such as the control plane's leader Leases), named by `heartbeatLeaseName(component, node)`,
 *   labelled `raven.openyurt.io/heartbeat=<component>`, with `spec.holderIdentity` = the node name,
 *   `spec.leaseDurationSeconds` = `HEARTBEAT.durationSeconds`, and `spec.renewTime` advanced every renew interval.
 * - What is trusted: nothing the writer chooses. A Lease whose name is not `heartbeatLeaseName(component, holder)` is
 *   ignored, and a renewal is valid for `HEARTBEAT.durationSeconds` whatever the Lease says. The admission policy in
 *   k8s/base/rbac/heartbeat-admission.yaml lets a node's Raven identity write only its own Lease, with that duration.
 * - Meaning for election: an endpoint whose Lease exists but has not been renewed within its duration is not
 *   available, even while the Node is Ready. An endpoint with no Lease at all falls back to the Node's Ready
 *   condition, so clusters still running upstream agents keep working.
 * - A graceful restart does not release the Lease: the restarted process renews it before it expires, so a
 *   restart never triggers a failover.
 */
export const HEARTBEAT = {
  namespace: 'raven-heartbeats',
  label: 'raven.openyurt.io/heartbeat',
  /** Fixed by the contract (the admission policy requires it); readers never take a writer's duration. */
  durationSeconds: 2,
  defaultRenewIntervalMs: 500,
} as const;

export type HeartbeatComponent = 'tunnel' | 'proxy';

/** The Lease a node's heartbeat must be written to; any other name is not that node's heartbeat. */
export function isHeartbeatLeaseOf(leaseName: string, component: HeartbeatComponent, nodeName: string): boolean {
  return leaseName === heartbeatLeaseName(component, nodeName);
}

export function heartbeatLeaseName(component: HeartbeatComponent, nodeName: string): string {
  const name = `raven-${component}-${nodeName}`;
  if (name.length <= 253) return name;
  const digest = createHash('sha256').update(nodeName).digest('hex').slice(0, 10);
  return `${name.slice(0, 242)}-${digest}`;
}
