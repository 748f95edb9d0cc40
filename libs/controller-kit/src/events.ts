import { randomBytes } from 'node:crypto';
import { RESOURCES, type KubeClient } from './kube-client.ts';
import type { Logger } from './logger.ts';
import { microTime } from './time.ts';

export interface EventTarget {
  apiVersion: string;
  kind: string;
  name: string;
  uid?: string;
  namespace?: string;
}

export interface EventInput {
  type: 'Normal' | 'Warning';
  reason: string;
  action: string;
  note: string;
}

export interface EventRecorderLimits {
  /** Events being created at once; the rest wait in order. */
  concurrency?: number;
  /** Events waiting beyond this are dropped (and logged): a burst must not grow memory without bound. */
  maxPending?: number;
}

/**
 * Records events.k8s.io/v1 Events. Events about cluster-scoped objects go to the `default` namespace, as the
 * apiserver expects. Failures are logged, never thrown: an Event must not fail a reconcile. Creates run a few at a
 * time, so a burst (a cold start elects every Gateway at once) does not crowd out the writes that matter, or run
 * into the apiserver's priority and fairness queues.
 */
export class EventRecorder {
  private readonly concurrency: number;
  private readonly maxPending: number;
  private active = 0;
  private readonly pending: Array<() => void> = [];
  private dropped = 0;

  constructor(
    private readonly kube: Pick<KubeClient, 'create'>,
    private readonly log: Logger,
    private readonly controller: string,
    private readonly instance: string,
    limits: EventRecorderLimits = {},
  ) {
    this.concurrency = limits.concurrency ?? 4;
    this.maxPending = limits.maxPending ?? 10_000;
  }

  /** Events dropped because the backlog was full. */
  get droppedCount(): number {
    return this.dropped;
  }

  async record(target: EventTarget, event: EventInput): Promise<void> {
    if (this.active >= this.concurrency) {
      if (this.pending.length >= this.maxPending) {
        this.dropped++;
        this.log.warn({ reason: event.reason, target: target.name, pending: this.pending.length }, 'event backlog full; event dropped');
        return;
      }
      await new Promise<void>((resolve) => this.pending.push(resolve));
    } else {
      this.active++;
    }
    try {
      await this.create(target, event);
    } finally {
      // The slot passes straight to the next waiter, so `active` never exceeds the bound.
      const next = this.pending.shift();
      if (next) next();
      else this.active--;
    }
  }

  private async create(target: EventTarget, event: EventInput): Promise<void> {
    const namespace = target.namespace ?? 'default';
    const body = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: `${target.name}.${randomBytes(8).toString('hex')}`, namespace },
      eventTime: microTime(),
      reportingController: this.controller,
      reportingInstance: this.instance.slice(0, 128),
      action: event.action,
      reason: event.reason,
      note: event.note.slice(0, 1024),
      type: event.type,
      regarding: { apiVersion: target.apiVersion, kind: target.kind, name: target.name, uid: target.uid, namespace: target.namespace },
    };
    try {
      await this.kube.create(RESOURCES.events, body);
    } catch (err) {
      this.log.warn({ err, reason: event.reason, target: target.name }, 'could not record event');
    }
  }
}
