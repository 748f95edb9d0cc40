import type { HeartbeatComponent } from '@raven/api-types';
import type { HeartbeatView } from './model.ts';

export type HeartbeatState = { kind: 'absent' } | { kind: 'fresh'; expiresAt: number } | { kind: 'expired'; since: number };

/**
 * Judges heartbeat Leases on this process's clock: a Lease expires `leaseDurationSeconds` after we *observed* its
 * renewTime change, so clock skew between nodes and the control plane cannot expire (or revive) anyone. Nothing is
 * judged expired from before `since()` (when our own watch of the Leases last resumed): after an apiserver outage,
 * agents get a full lease duration to renew before anyone fails over.
 */
export class HeartbeatTracker {
  private readonly observed = new Map<string, { renewTime: string; at: number; durationMs: number }>();

  constructor(private readonly since: () => number = () => 0, private readonly now: () => number = Date.now) {}

  private static key(component: HeartbeatComponent, node: string): string {
    return `${component}/${node}`;
  }

  /** Records a Lease seen in an add/update event; returns true if it had expired before this renewal. */
  observe(lease: HeartbeatView): boolean {
    const key = HeartbeatTracker.key(lease.component, lease.node);
    const previous = this.observed.get(key);
    const wasExpired = previous !== undefined && this.now() >= Math.max(previous.at, this.since()) + previous.durationMs;
    if (!previous || previous.renewTime !== lease.renewTime || previous.durationMs !== lease.durationMs) {
      this.observed.set(key, { renewTime: lease.renewTime, at: this.now(), durationMs: lease.durationMs });
    }
    return wasExpired;
  }

  forget(lease: HeartbeatView): void {
    this.observed.delete(HeartbeatTracker.key(lease.component, lease.node));
  }

  state(component: HeartbeatComponent, node: string): HeartbeatState {
    const seen = this.observed.get(HeartbeatTracker.key(component, node));
    if (!seen) return { kind: 'absent' };
    const expiresAt = Math.max(seen.at, this.since()) + seen.durationMs;
    return this.now() < expiresAt ? { kind: 'fresh', expiresAt } : { kind: 'expired', since: expiresAt };
  }
}
