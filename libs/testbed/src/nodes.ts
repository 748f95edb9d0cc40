import { RESOURCES, isNotFound, metaTime, type KubeClient } from '@raven/controller-kit';

export interface FakeNode {
  name: string;
  internalIP?: string;
  externalIP?: string;
  podCIDRs?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ready?: 'True' | 'False' | 'Unknown';
}

function nodeStatus(node: FakeNode) {
  const now = metaTime();
  const addresses = [
    ...(node.internalIP ? [{ type: 'InternalIP', address: node.internalIP }] : []),
    ...(node.externalIP ? [{ type: 'ExternalIP', address: node.externalIP }] : []),
    { type: 'Hostname', address: node.name },
  ];
  return {
    addresses,
    conditions: [{ type: 'Ready', status: node.ready ?? 'True', reason: 'RavenTestbed', message: 'set by the Raven test bed', lastHeartbeatTime: now, lastTransitionTime: now }],
  };
}

/**
 * Registers a Node the way a kubelet would (object, then status through the status subresource). The test bed plays
 * the kubelet's part for Node status only; nothing else about a kubelet is simulated.
 */
export async function registerNode(kube: KubeClient, node: FakeNode): Promise<void> {
  const spec = node.podCIDRs && node.podCIDRs.length > 0 ? { podCIDR: node.podCIDRs[0], podCIDRs: node.podCIDRs } : {};
  await kube.create(RESOURCES.nodes, {
    apiVersion: 'v1', kind: 'Node', metadata: { name: node.name, labels: node.labels ?? {}, annotations: node.annotations ?? {} }, spec,
  });
  await kube.patch(RESOURCES.nodes, { name: node.name, subresource: 'status' }, { status: nodeStatus(node) }, 'strategic');
}

export async function setNodeReady(kube: KubeClient, name: string, ready: 'True' | 'False' | 'Unknown'): Promise<void> {
  const now = metaTime();
  await kube.patch(RESOURCES.nodes, { name, subresource: 'status' }, {
    status: { conditions: [{ type: 'Ready', status: ready, reason: 'RavenTestbed', message: `set to ${ready} by the Raven test bed`, lastHeartbeatTime: now, lastTransitionTime: now }] },
  }, 'strategic');
}

export async function setNodeAddresses(kube: KubeClient, name: string, internalIP: string): Promise<void> {
  await kube.patch(RESOURCES.nodes, { name, subresource: 'status' }, { status: { addresses: [{ type: 'InternalIP', address: internalIP }, { type: 'Hostname', address: name }] } }, 'merge');
}

export async function labelNode(kube: KubeClient, name: string, labels: Record<string, string | null>): Promise<void> {
  await kube.patch(RESOURCES.nodes, { name }, { metadata: { labels } }, 'merge');
}

export async function deleteNode(kube: KubeClient, name: string): Promise<void> {
  try {
    await kube.delete(RESOURCES.nodes, { name });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
