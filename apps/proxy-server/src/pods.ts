import { RESOURCES, isNotFound, type KubeClient, type Logger } from '@raven/controller-kit';
import { z } from 'zod';

const podSchema = z.object({ spec: z.object({ nodeName: z.string().optional() }).optional() });

/**
 * The node of a pod, for kubelet paths addressed by IP (the pod tells which of the nodes sharing an IP is meant).
 * A GET per miss, cached briefly: pods do not move between nodes, they are replaced.
 */
export class PodNodes {
  private readonly cache = new Map<string, { node: string | undefined; at: number }>();

  constructor(private readonly kube: KubeClient, private readonly log: Logger, private readonly ttlMs = 30_000, private readonly negativeTtlMs = 2_000) {}

  readonly lookup = async (namespace: string, pod: string): Promise<string | undefined> => {
    const key = `${namespace}/${pod}`;
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < (hit.node ? this.ttlMs : this.negativeTtlMs)) return hit.node;
    let node: string | undefined;
    try {
      node = podSchema.parse(await this.kube.get(RESOURCES.pods, { namespace, name: pod })).spec?.nodeName || undefined;
    } catch (err) {
      if (!isNotFound(err)) {
        this.log.warn({ pod: key, err }, 'pod lookup failed');
        throw err;
      }
    }
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(key, { node, at: Date.now() });
    return node;
  };
}
