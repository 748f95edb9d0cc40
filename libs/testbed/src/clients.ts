import { KubeClient, type KubeClientOptions } from '@raven/controller-kit';
import type { ClusterInfo } from './cluster.ts';

/** A KubeClient with the cluster's admin credential, for test setup and assertions. */
export function adminClient(info: ClusterInfo, userAgent = 'raven-test', opts: Pick<KubeClientOptions, 'maxConnections'> = {}): Promise<KubeClient> {
  return KubeClient.load({ ...opts, kubeconfig: info.kubeconfig, userAgent });
}

/** A short unique suffix so tests sharing one control plane never collide on names. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
}
