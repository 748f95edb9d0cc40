import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { Gauge, type Registry } from 'prom-client';
import { z } from 'zod';
import { delay } from './backoff.ts';
import { isAlreadyExists, isConflict, isNotFound } from './errors.ts';
import { RESOURCES, type KubeClient } from './kube-client.ts';
import type { Logger } from './logger.ts';
import { microTime } from './time.ts';

export interface LeaderElectionOptions {
  kube: KubeClient;
  log: Logger;
  namespace: string;
  name: string;
  identity?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  registry?: Registry;
  metricPrefix?: string;
  /** Labels the Lease carries (so that an uninstall can find it). */
  labels?: Readonly<Record<string, string>>;
}

const leaseSchema = z.object({
  metadata: z.object({ resourceVersion: z.string().optional() }).loose(),
  spec: z
    .object({
      holderIdentity: z.string().nullish(),
      leaseDurationSeconds: z.number().nullish(),
      acquireTime: z.string().nullish(),
      renewTime: z.string().nullish(),
      leaseTransitions: z.number().nullish(),
    })
    .loose()
    .optional(),
});
type Lease = z.infer<typeof leaseSchema>;

/**
 * Leader election on a coordination.k8s.io/v1 Lease with client-go's semantics (defaults 15 s lease, 10 s renew
 * deadline, 2 s retry). Expiry is judged on this process's clock from when it last saw the record change, so clock
 * skew between replicas does not matter. `release()` on shutdown hands the lease over at once.
 */
export class LeaderElector {
  readonly identity: string;
  private leading = false;
  private observedRecord = '';
  private observedAt = 0;
  private observedDurationMs = 0;
  private lastRenew = 0;
  /** The attempt the campaign loop has in flight: release() waits for it, so it can neither undo nor race the release. */
  private attempt?: Promise<boolean>;
  private released = false;
  private lastError = 0;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly gauge?: Gauge<'name'>;

  constructor(private readonly opts: LeaderElectionOptions) {
    this.identity = opts.identity ?? `${hostname()}_${randomUUID()}`;
    this.leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    if (opts.registry) {
      this.gauge = new Gauge({ name: `${opts.metricPrefix ?? 'raven'}_leader_is_leader`, help: '1 while this replica holds the leader lease', labelNames: ['name'], registers: [opts.registry] });
      this.gauge.set({ name: opts.name }, 0);
    }
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** Healthy while the election loop can talk to the API (leader or standby). */
  healthy(): boolean {
    return this.lastError === 0 || Date.now() - this.lastError > this.leaseDurationMs;
  }

  /**
   * Campaigns until `signal` aborts. Calls `onStartedLeading` with a signal that aborts when leadership is lost
   * (renewal failed for longer than the renew deadline) or on shutdown; then campaigns again.
   */
  async run(signal: AbortSignal, onStartedLeading: (leaderSignal: AbortSignal) => void, onStoppedLeading?: () => void): Promise<void> {
    while (!signal.aborted) {
      if (!(await this.attemptOnce())) {
        // Try again on the retry grid, or right when the current holder's lease would expire if that is sooner.
        await delay(Math.max(10, Math.min(this.retryPeriodMs, this.expiresInMs() + 10)), signal);
        continue;
      }
      this.setLeading(true);
      const leadership = new AbortController();
      const stopLeading = () => leadership.abort();
      signal.addEventListener('abort', stopLeading, { once: true });
      onStartedLeading(leadership.signal);
      while (!signal.aborted) {
        await delay(this.retryPeriodMs, signal);
        if (signal.aborted) break;
        if (await this.attemptOnce()) continue;
        if (Date.now() - this.lastRenew > this.renewDeadlineMs) {
          this.opts.log.error({ lease: this.opts.name }, 'failed to renew the leader lease within the renew deadline; stepping down');
          break;
        }
      }
      signal.removeEventListener('abort', stopLeading);
      leadership.abort();
      this.setLeading(false);
      onStoppedLeading?.();
    }
  }

  private expiresInMs(): number {
    return this.observedAt === 0 ? this.retryPeriodMs : this.observedAt + this.observedDurationMs - Date.now();
  }

  private setLeading(leading: boolean): void {
    if (leading !== this.leading) this.opts.log.info({ lease: this.opts.name, identity: this.identity, leading }, leading ? 'became leader' : 'lost leadership');
    this.leading = leading;
    this.gauge?.set({ name: this.opts.name }, leading ? 1 : 0);
  }

  private leaseBody(current: Lease | undefined, now: Date): { metadata: { name: string; namespace: string; resourceVersion?: string }; [key: string]: unknown } {
    const spec = current?.spec;
    const transitions = (spec?.leaseTransitions ?? 0) + (spec?.holderIdentity && spec.holderIdentity !== this.identity ? 1 : 0);
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: this.opts.name, namespace: this.opts.namespace, ...(this.opts.labels ? { labels: { ...this.opts.labels } } : {}), ...(current ? { resourceVersion: current.metadata.resourceVersion } : {}) },
      spec: {
        holderIdentity: this.identity,
        leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1_000),
        acquireTime: spec?.holderIdentity === this.identity && spec.acquireTime ? spec.acquireTime : microTime(now),
        renewTime: microTime(now),
        leaseTransitions: transitions,
      },
    };
  }

  private attemptOnce(): Promise<boolean> {
    this.attempt = this.tryAcquireOrRenew();
    return this.attempt;
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { kube, namespace, name, log } = this.opts;
    const ref = { namespace, name };
    try {
      let current: Lease | undefined;
      try {
        current = leaseSchema.parse(await kube.get(RESOURCES.leases, ref));
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      const now = new Date();
      if (this.released) return false;
      if (!current) {
        await kube.create(RESOURCES.leases, this.leaseBody(undefined, now));
        return this.renewed();
      }
      const spec = current.spec ?? {};
      const record = `${spec.holderIdentity ?? ''}/${spec.renewTime ?? ''}`;
      if (record !== this.observedRecord) {
        this.observedRecord = record;
        this.observedAt = Date.now();
      }
      const holder = spec.holderIdentity ?? '';
      const durationMs = (spec.leaseDurationSeconds ?? 0) * 1_000;
      this.observedDurationMs = durationMs;
      const heldByOther = holder !== '' && holder !== this.identity && Date.now() - this.observedAt < durationMs;
      if (heldByOther) {
        this.lastError = 0;
        return false;
      }
      if (this.released) return false;
      await kube.replace(RESOURCES.leases, ref, this.leaseBody(current, now));
      return this.renewed();
    } catch (err) {
      if (!isConflict(err) && !isAlreadyExists(err)) {
        this.lastError = Date.now();
        log.warn({ lease: name, err }, 'leader election round failed');
      }
      return false;
    }
  }

  private renewed(): boolean {
    this.lastRenew = Date.now();
    this.lastError = 0;
    return true;
  }

  /** Gives the lease up (empty holder, 1 s duration) if we hold it, so a standby takes over without waiting. */
  async release(): Promise<void> {
    this.released = true;
    // A renew in flight finishes first: written after the release it would take the lease back, and landing between
    // the release's read and write it would make that write conflict.
    await this.attempt;
    // The campaign loop may already have stepped down locally (shutdown aborts it first); the API decides.
    if (this.lastRenew === 0) return;
    const { kube, namespace, name, log } = this.opts;
    try {
      for (let attempt = 1; ; attempt++) {
        const current = leaseSchema.parse(await kube.get(RESOURCES.leases, { namespace, name }));
        if (current.spec?.holderIdentity !== this.identity) return;
        try {
          await kube.replace(RESOURCES.leases, { namespace, name }, {
            apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
            metadata: { name, namespace, ...(this.opts.labels ? { labels: { ...this.opts.labels } } : {}), resourceVersion: current.metadata.resourceVersion },
            spec: { ...current.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime() },
          });
          break;
        } catch (err) {
          if (!isConflict(err) || attempt >= 3) throw err;
        }
      }
      log.info({ lease: name }, 'released the leader lease');
    } catch (err) {
      log.warn({ lease: name, err }, 'could not release the leader lease');
    } finally {
      this.setLeading(false);
    }
  }
}
