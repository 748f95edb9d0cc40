import { ApiError, ConfigError, isNotFound, type KubeClient } from '@raven/controller-kit';
import { z } from 'zod';

/**
 * Uninstall detection. A stopping agent keeps its kernel state so that the next one adopts it (a hitless restart);
 * but when its DaemonSet is gone or being deleted (`kubectl delete -k`, `helm uninstall`), no agent follows, so it
 * removes everything it owns first. Any doubt (the apiserver unreachable, a server error) keeps the state.
 */

const NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export interface OwnerRef {
  namespace: string;
  name: string;
}

/** `--uninstall-with=<namespace>/<daemonset>`. */
export function parseOwnerFlag(value: string): OwnerRef {
  const [namespace = '', name = '', ...rest] = value.split('/');
  if (rest.length > 0 || !NAME.test(namespace) || !NAME.test(name)) throw new ConfigError(`--uninstall-with must be <namespace>/<daemonset>, got ${JSON.stringify(value)}`);
  return { namespace, name };
}

/**
 * `refused`: the agent's own identity is no longer accepted (401/403). Nothing but an uninstall removes the agent's
 * ServiceAccount or Role, and `kubectl delete -k` deletes them before the DaemonSet.
 */
export type OwnerState = 'present' | 'deleting' | 'gone' | 'refused' | 'unknown';

const daemonSetSchema = z.looseObject({ metadata: z.looseObject({ deletionTimestamp: z.string().optional() }) });

export async function ownerState(kube: KubeClient, ref: OwnerRef): Promise<OwnerState> {
  try {
    const ds = daemonSetSchema.parse(await kube.request('GET', `/apis/apps/v1/namespaces/${ref.namespace}/daemonsets/${ref.name}`, { timeoutMs: 3_000 }));
    return ds.metadata.deletionTimestamp ? 'deleting' : 'present';
  } catch (err) {
    if (isNotFound(err)) return 'gone';
    return err instanceof ApiError && (err.status === 401 || err.status === 403) ? 'refused' : 'unknown';
  }
}

/** Whether a stopping agent removes its kernel state. */
export const removesStateOnStop = (state: OwnerState): boolean => state === 'gone' || state === 'deleting' || state === 'refused';
