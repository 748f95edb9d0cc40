import { HEARTBEAT, heartbeatLeaseName, type HeartbeatComponent } from '@raven/api-types';
import { delay } from './backoff.ts';
import { isConflict, isNotFound } from './errors.ts';
import { RESOURCES, type KubeClient } from './kube-client.ts';
import type { Logger } from './logger.ts';
import { microTime } from './time.ts';

export interface HeartbeatOptions {
  kube: KubeClient;
  log: Logger;
  component: HeartbeatComponent;
  nodeName: string;
  namespace?: string;
  intervalMs?: number;
}

/** Renews this node's heartbeat Lease (the contract in @raven/api-types) while `active()` says the node is a candidate. */
export class HeartbeatRenewer {
  private lastSuccess = 0;
  private resourceVersion?: string;

  constructor(private readonly opts: HeartbeatOptions) {}

  get leaseName(): string {
    return heartbeatLeaseName(this.opts.component, this.opts.nodeName);
  }

  /** Healthy when the last renewal is younger than the lease duration. */
  healthy(): boolean {
    return Date.now() - this.lastSuccess < HEARTBEAT.durationSeconds * 1_000;
  }

  async run(signal: AbortSignal, active: () => boolean = () => true): Promise<void> {
    const interval = this.opts.intervalMs ?? HEARTBEAT.defaultRenewIntervalMs;
    while (!signal.aborted) {
      if (active()) {
        try {
          await this.renew();
        } catch (err) {
          this.opts.log.warn({ lease: this.leaseName, err }, 'heartbeat renewal failed');
        }
      }
      await delay(interval, signal);
    }
  }

  async renew(): Promise<void> {
    const { kube, component, nodeName } = this.opts;
    const namespace = this.opts.namespace ?? HEARTBEAT.namespace;
    const body = (resourceVersion?: string) => ({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: this.leaseName, namespace, labels: { [HEARTBEAT.label]: component }, ...(resourceVersion ? { resourceVersion } : {}) },
      spec: { holderIdentity: nodeName, leaseDurationSeconds: HEARTBEAT.durationSeconds, renewTime: microTime() },
    });
    const ref = { namespace, name: this.leaseName };
    type Written = { metadata: { resourceVersion: string } };
    let written: Written | undefined;
    if (this.resourceVersion !== undefined) {
      try {
        written = await kube.replace<Written>(RESOURCES.leases, ref, body(this.resourceVersion));
      } catch (err) {
        if (!isConflict(err) && !isNotFound(err)) throw err;
      }
    }
    if (!written) {
      // First renewal, or the Lease changed or vanished under us: start again from what the API has.
      this.resourceVersion = undefined;
      let current: Written | undefined;
      try {
        current = await kube.get<Written>(RESOURCES.leases, ref);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      written = current
        ? await kube.replace<Written>(RESOURCES.leases, ref, body(current.metadata.resourceVersion))
        : await kube.create<Written>(RESOURCES.leases, body());
    }
    this.resourceVersion = written.metadata.resourceVersion;
    this.lastSuccess = Date.now();
  }
}
