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

/**
 * Records events.k8s.io/v1 Events. Events about cluster-scoped objects go to the `default` namespace, as the
 * apiserver expects. Failures are logged, never thrown: an Event must not fail a reconcile.
 */
export class EventRecorder {
  constructor(
    private readonly kube: KubeClient,
    private readonly log: Logger,
    private readonly controller: string,
    private readonly instance: string,
  ) {}

  async record(target: EventTarget, event: EventInput): Promise<void> {
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
